# syntax=docker/dockerfile:1
# Warden's container image: a release build on rust:1.95, run as the non-root
# user of a distroless image. Nothing secret goes into the image: the database
# URL and keys come from the environment at run time (the Helm chart mounts
# them from a Secret).
#
#   docker build -t registry.example.com/warden:0.1.0 .
#
# protoc is vendored by the build (protoc-bin-vendored), so the builder needs
# nothing beyond the Rust image.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin warden \
 && install -D -m 0755 target/release/warden /out/warden

# glibc, libgcc and CA certificates, no shell, no package manager; uid/gid
# 65532 ("nonroot"), which the chart's podSecurityContext also names.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/warden /usr/local/bin/warden
USER 65532:65532
# gRPC API (WARDEN_LISTEN), plaintext health (WARDEN_HEALTH_LISTEN),
# metrics (WARDEN_HTTP_LISTEN). The server's own default is 127.0.0.1:50051,
# unreachable from outside a container, so the image listens on all
# interfaces; health and metrics stay off until configured.
EXPOSE 50051 8081 9090
ENV WARDEN_LISTEN=0.0.0.0:50051
ENTRYPOINT ["/usr/local/bin/warden"]
CMD ["serve"]
