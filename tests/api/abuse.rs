//! One client cannot take the service from others: streams per connection
//! are capped, a stream that sends headers only holds no in-flight slot and
//! ends, and statuses made below the handlers obey the contract. Raw
//! HTTP/2 (the `h2` crate) plays the misbehaving client.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use prost::Message;
use tokio::task::JoinHandle;
use tonic::{Code, Status};
use warden::app::MAX_STREAMS_PER_CONNECTION;
use warden::grpc::pb;

use crate::helpers::{PASSWORD, TestServer, assert_status, bearer, client_from, serving};

/// A bound on real waiting: long on a noisy machine, short for a test.
const PATIENCE: Duration = Duration::from_secs(20);

/// A raw HTTP/2 connection, and the stream limit the server announced
/// (read from the connection as it is driven; `usize::MAX` until known).
struct RawConnection {
    send: SendRequest<Bytes>,
    announced: Arc<AtomicUsize>,
    _driver: JoinHandle<()>,
}

async fn raw_connection(addr: SocketAddr) -> RawConnection {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The client would open every stream at once unless the server says
    // otherwise.
    let (send, mut connection) = h2::client::Builder::new()
        .initial_max_send_streams(usize::MAX)
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("h2 handshake");
    let announced = Arc::new(AtomicUsize::new(usize::MAX));
    let seen = announced.clone();
    let driver = tokio::spawn(async move {
        let _ = poll_fn(|cx| {
            let polled = Pin::new(&mut connection).poll(cx);
            seen.store(connection.max_concurrent_send_streams(), Ordering::SeqCst);
            polled
        })
        .await;
    });
    RawConnection {
        send,
        announced,
        _driver: driver,
    }
}

fn grpc_request(addr: SocketAddr, method: &str, extra: &[(&str, &str)]) -> http::Request<()> {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/warden.v1.AuthService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.body(()).expect("request")
}

/// One uncompressed gRPC frame.
fn frame(message: &impl Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&body);
    framed.into()
}

/// How a raw stream ended: the gRPC status the server sent (from the
/// headers of a trailers-only answer, or the trailers), or a reset.
#[derive(Debug)]
enum Ending {
    Status(Status),
    Reset,
}

async fn ending(response: h2::client::ResponseFuture) -> Ending {
    let Ok(response) = response.await else {
        return Ending::Reset;
    };
    if let Some(status) = Status::from_header_map(response.headers()) {
        return Ending::Status(status);
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        if chunk.is_err() {
            return Ending::Reset;
        }
    }
    match body.trailers().await {
        Ok(Some(trailers)) => {
            Ending::Status(Status::from_header_map(&trailers).unwrap_or_else(|| Status::ok("")))
        }
        _ => Ending::Reset,
    }
}

/// A complete unary call on the raw connection.
async fn raw_unary(
    connection: &mut RawConnection,
    addr: SocketAddr,
    method: &str,
    extra: &[(&str, &str)],
    message: &impl Message,
) -> Ending {
    let send = connection.send.clone().ready().await.expect("ready");
    connection.send = send;
    let (response, mut stream) = connection
        .send
        .send_request(grpc_request(addr, method, extra), false)
        .expect("send request");
    stream.send_data(frame(message), true).expect("send body");
    tokio::time::timeout(PATIENCE, ending(response))
        .await
        .expect("the call ends")
}

/// Opens `total` header-only streams to `method`, as fast as the
/// connection allows (h2 holds back those beyond the server's limit until
/// earlier ones end).
struct Flood {
    opened: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    endings: tokio::sync::mpsc::UnboundedReceiver<Ending>,
    task: JoinHandle<()>,
}

fn flood(connection: &RawConnection, addr: SocketAddr, method: &str, total: usize) -> Flood {
    let opened = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let (tx, endings) = tokio::sync::mpsc::unbounded_channel();
    let mut send = connection.send.clone();
    let method = method.to_owned();
    let task = tokio::spawn({
        let (opened, ended) = (opened.clone(), ended.clone());
        async move {
            let mut bodies = Vec::new();
            for _ in 0..total {
                send = match send.ready().await {
                    Ok(send) => send,
                    Err(_) => return,
                };
                let Ok((response, body)) =
                    send.send_request(grpc_request(addr, &method, &[]), false)
                else {
                    return;
                };
                // Kept open: no data frame ever follows the headers.
                bodies.push(body);
                opened.fetch_add(1, Ordering::SeqCst);
                let (tx, ended) = (tx.clone(), ended.clone());
                tokio::spawn(async move {
                    let end = ending(response).await;
                    ended.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send(end);
                });
            }
            std::future::pending::<()>().await;
        }
    });
    Flood {
        opened,
        ended,
        endings,
        task,
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Flood {
    /// Waits (bounded) until `n` streams are open.
    async fn until_opened(&self, n: usize) {
        tokio::time::timeout(PATIENCE, async {
            while self.opened.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("streams open");
    }

    /// The next `n` endings (bounded wait).
    async fn endings(&mut self, n: usize) -> Vec<Ending> {
        let mut out = Vec::new();
        while out.len() < n {
            let next = tokio::time::timeout(PATIENCE, self.endings.recv())
                .await
                .expect("header-only streams end");
            out.push(next.expect("ending"));
        }
        out
    }
}

#[track_caller]
fn assert_timed_out_or_reset(endings: &[Ending]) {
    for end in endings {
        if let Ending::Status(status) = end {
            assert_status(status, Code::DeadlineExceeded, "TIMEOUT");
        }
    }
}

/// Few slots, far fewer than one connection's streams: if header-only
/// streams held slots, everyone else would get OVERLOADED.
async fn start_small() -> TestServer {
    TestServer::start_with(|c| {
        c.server.max_in_flight = 8;
        c.server.request_body_timeout_secs = 2;
    })
    .await
}

#[tokio::test]
async fn eleven_hundred_header_only_streams_hold_no_slot_and_other_clients_are_served() {
    let mut server = start_small().await;
    let (_, token) = server.signed_in("alice", PASSWORD).await;
    let addr = server.addr;
    let mut attacker = raw_connection(addr).await;
    // A whole call first, so the server's SETTINGS have been applied.
    let warm = raw_unary(
        &mut attacker,
        addr,
        "ValidateSession",
        &[],
        &pb::ValidateSessionRequest {
            token: token.clone(),
        },
    )
    .await;
    let cap = usize::try_from(MAX_STREAMS_PER_CONNECTION).expect("small");

    let mut attack = flood(&attacker, addr, "ValidateSession", 1_100);
    attack.until_opened(cap).await;
    let mut victim = client_from(&server, "127.0.0.9").await;
    let mut served = Vec::new();
    for _ in 0..3 {
        served.push(
            victim
                .validate_session(pb::ValidateSessionRequest {
                    token: token.clone(),
                })
                .await
                .map(|_| ()),
        );
        served.push(
            victim
                .login(pb::LoginRequest {
                    username: "alice".into(),
                    password: PASSWORD.into(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        );
    }
    let first_batch = attack.endings(cap).await;

    assert!(matches!(warm, Ending::Status(ref s) if s.code() == Code::Ok));
    assert_eq!(attacker.announced.load(Ordering::SeqCst), cap);
    for result in &served {
        assert!(result.is_ok(), "another client is served: {result:?}");
    }
    assert_timed_out_or_reset(&first_batch);
    eprintln!(
        "flood: {} streams sent, {} ended so far",
        attack.opened.load(Ordering::SeqCst),
        attack.ended.load(Ordering::SeqCst)
    );
    drop(attack);
    assert!(serving(&server).await);
    server.stop().await;
}

#[tokio::test]
async fn header_only_login_and_step_up_streams_hold_no_slot_either() {
    let mut server = start_small().await;
    let (_, token) = server.signed_in("bob", PASSWORD).await;
    let addr = server.addr;

    for method in ["Login", "ChangePassword", "VerifyTotp", "DeleteAccount"] {
        let attacker = raw_connection(addr).await;
        let mut attack = flood(&attacker, addr, method, 50);
        attack.until_opened(50).await;
        let mut victim = client_from(&server, "127.0.0.10").await;

        let login = victim
            .login(pb::LoginRequest {
                username: "bob".into(),
                password: PASSWORD.into(),
                ..Default::default()
            })
            .await;
        let account = victim
            .get_account(bearer(pb::GetAccountRequest {}, &token))
            .await;
        let endings = attack.endings(50).await;

        assert!(login.is_ok(), "{method}: {login:?}");
        assert!(account.is_ok(), "{method}: {account:?}");
        assert_timed_out_or_reset(&endings);
    }
    server.stop().await;
}

#[tokio::test]
async fn an_unsupported_grpc_encoding_is_invalid_request_and_not_echoed() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut raw = raw_connection(addr).await;
    let login = pb::LoginRequest {
        username: "alice".into(),
        password: PASSWORD.into(),
        ..Default::default()
    };

    let mut answers = Vec::new();
    for encoding in ["gzip", "x-warden-probe-7f3a"] {
        for method in ["Login", "ValidateSession"] {
            let end = raw_unary(
                &mut raw,
                addr,
                method,
                &[("grpc-encoding", encoding)],
                &login,
            )
            .await;
            answers.push((encoding, end));
        }
    }

    for (encoding, end) in &answers {
        let Ending::Status(status) = end else {
            panic!("{encoding}: reset instead of a status");
        };
        assert_status(status, Code::InvalidArgument, "INVALID_REQUEST");
        assert!(
            !status.message().contains(encoding),
            "the message does not echo the header: {}",
            status.message()
        );
    }
    assert!(serving(&server).await);
    server.stop().await;
}

#[tokio::test]
async fn a_client_deadline_that_passes_is_deadline_exceeded_timeout_not_cancelled() {
    let server = TestServer::start_with(|c| c.server.request_body_timeout_secs = 30).await;
    let addr = server.addr;
    let raw = raw_connection(addr).await;
    let send = raw.send.clone().ready().await.expect("ready");
    let mut send = send;

    // Headers with a short deadline and no message: the deadline ends it.
    let (response, _body) = send
        .send_request(
            grpc_request(addr, "ValidateSession", &[("grpc-timeout", "300m")]),
            false,
        )
        .expect("send");
    let end = tokio::time::timeout(PATIENCE, ending(response))
        .await
        .expect("the call ends");

    let Ending::Status(status) = end else {
        panic!("reset instead of a status");
    };
    assert_status(&status, Code::DeadlineExceeded, "TIMEOUT");
    server.stop().await;
}

/// HTTP/2 frame header: length, type, flags, stream id.
fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = u32::try_from(len).expect("small frame").to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// An HPACK block for a gRPC call, with no dynamic-table or Huffman use so
/// it can be written by hand and repeated on every stream.
fn hpack_block(addr: SocketAddr, method: &str) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.push(u8::try_from(s.len()).expect("short"));
        out.extend_from_slice(s.as_bytes());
    }
    // :method POST and :scheme http are static-table entries 3 and 6.
    let mut block = vec![0x83, 0x86];
    // Literals without indexing, names from the static table: :path (4),
    // :authority (1), content-type (31 = 15 + 16).
    block.push(0x04);
    string(&mut block, &format!("/warden.v1.AuthService/{method}"));
    block.push(0x01);
    string(&mut block, &addr.to_string());
    block.extend_from_slice(&[0x0f, 0x10]);
    string(&mut block, "application/grpc");
    block.push(0x00);
    string(&mut block, "te");
    string(&mut block, "trailers");
    block
}

/// A client that ignores SETTINGS: 1,100 HEADERS frames (no data) written
/// at once on one connection. The server accepts its limit and refuses
/// the rest with RST_STREAM(REFUSED_STREAM); the accepted streams hold no
/// slot, so another client is served while they are open.
#[tokio::test]
async fn a_client_ignoring_the_stream_limit_has_the_excess_refused() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // The accepted streams must still be open when the victim calls: give
    // them far longer than the test needs.
    let mut server = TestServer::start_with(|c| {
        c.server.max_in_flight = 8;
        c.server.request_body_timeout_secs = 60;
    })
    .await;
    let (_, token) = server.signed_in("carol", PASSWORD).await;
    let addr = server.addr;
    let cap = usize::try_from(MAX_STREAMS_PER_CONNECTION).expect("small");
    const STREAMS: u32 = 1_100;

    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frame_header(&mut out, 0, 0x4, 0, 0);
    let block = hpack_block(addr, "ValidateSession");
    for i in 0..STREAMS {
        // HEADERS with END_HEADERS, without END_STREAM.
        frame_header(&mut out, block.len(), 0x1, 0x4, 1 + 2 * i);
        out.extend_from_slice(&block);
    }
    tcp.write_all(&out).await.expect("write flood");
    let mut refused = std::collections::HashSet::new();
    let mut other = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        let mut header = [0u8; 9];
        while refused.len() < STREAMS as usize - cap {
            tcp.read_exact(&mut header).await.expect("read frame");
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let (kind, flags) = (header[3], header[4]);
            let stream =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            tcp.read_exact(&mut payload).await.expect("read payload");
            match kind {
                // RST_STREAM: 7 is REFUSED_STREAM.
                0x3 if payload == [0, 0, 0, 7] => {
                    refused.insert(stream);
                }
                // SETTINGS: acknowledge.
                0x4 if flags & 0x1 == 0 => {
                    let mut ack = Vec::new();
                    frame_header(&mut ack, 0, 0x4, 0x1, 0);
                    tcp.write_all(&ack).await.expect("ack settings");
                }
                0x4 | 0x8 => {}
                _ => other.push((kind, stream)),
            }
        }
    })
    .await
    .expect("the excess streams are refused");
    let mut victim = client_from(&server, "127.0.0.11").await;
    let validated = victim
        .validate_session(pb::ValidateSessionRequest { token })
        .await;
    let login = victim
        .login(pb::LoginRequest {
            username: "carol".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await;

    let accepted = STREAMS as usize - refused.len();
    eprintln!(
        "raw flood: {accepted} accepted, {} refused, other frames {other:?}",
        refused.len()
    );
    assert_eq!(accepted, cap);
    assert!(
        refused
            .iter()
            .all(|id| *id > 2 * MAX_STREAMS_PER_CONNECTION),
        "the first streams are the accepted ones"
    );
    assert!(
        other.is_empty(),
        "no answer yet to header-only streams: {other:?}"
    );
    assert!(validated.is_ok(), "{validated:?}");
    assert!(login.is_ok(), "{login:?}");
    drop(tcp);
    server.stop().await;
}
