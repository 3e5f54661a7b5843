//! Argon2id computations in a worker's memory: hashing, verifying and the
//! padding that equalises verify cost.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::{Argon2Params, HashError, OUTPUT_LEN, SALT_LEN, failed};

/// The PHC string `$argon2id$v=19$m=…,t=…,p=…$salt$output`, as the argon2
/// crate's own `PasswordHasher` writes it.
pub(super) fn phc_string(params: &Params, salt: &[u8], output: &[u8]) -> Result<String, HashError> {
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(failed)?,
        salt: Some(Salt::new(salt).map_err(failed)?),
        hash: Some(Output::new(output).map_err(failed)?),
    }
    .to_string())
}

/// The part of the worker's memory `params` use, or an error when they need
/// more than it has.
pub(super) fn blocks_for<'m>(
    memory: &'m mut [Block],
    params: &Params,
) -> Result<&'m mut [Block], HashError> {
    let available = memory.len();
    memory.get_mut(..params.block_count()).ok_or_else(|| {
        failed(format!(
            "argon2 memory {} KiB exceeds the hashing workers' {available} KiB",
            params.m_cost()
        ))
    })
}

/// Argon2's work: every pass fills every block once.
pub(super) fn work_of(params: &Params) -> u64 {
    u64::try_from(params.block_count())
        .unwrap_or(u64::MAX)
        .saturating_mul(u64::from(params.t_cost()))
}

pub(super) fn hash_in(
    memory: &mut [Block],
    params: Argon2Params,
    secret: &[u8],
) -> Result<String, HashError> {
    let params = params.params()?;
    let salt = crate::crypto::random_bytes::<SALT_LEN>();
    let mut output = Zeroizing::new([0u8; OUTPUT_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            secret,
            &salt[..],
            &mut output[..],
            blocks_for(memory, &params)?,
        )
        .map_err(failed)?;
    phc_string(&params, &salt[..], &output[..])
}

/// Recomputes `phc` for `secret` with the parameters it names and compares
/// in constant time; then pads the work up to `current`'s.
pub(super) fn verify_in(
    memory: &mut [Block],
    current: Argon2Params,
    secret: &[u8],
    phc: &str,
) -> Result<bool, HashError> {
    let hash = PasswordHash::new(phc).map_err(failed)?;
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return Err(failed("stored hash has no salt or output"));
    };
    let algorithm = Algorithm::try_from(hash.algorithm.as_str()).map_err(failed)?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(failed)?
        .unwrap_or_default();
    // The parameters (and the output length) come from the PHC string.
    let params = Params::try_from(&hash).map_err(failed)?;
    let mut buffer = Zeroizing::new([0u8; Output::MAX_LENGTH]);
    let computed = buffer
        .get_mut(..expected.len())
        .ok_or_else(|| failed("stored hash output too long"))?;
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(secret, salt, &mut *computed, blocks_for(memory, &params)?)
        .map_err(failed)?;
    let matched = bool::from(computed.ct_eq(expected.as_bytes()));
    if let Some(padding) = padding(work_of(&params), &current.params()?)? {
        pad_in(memory, &padding)?;
    }
    Ok(matched)
}

/// The parameters of a computation that makes up the work `target` does
/// beyond `spent`, within `target`'s memory size; `None` when nothing is
/// missing.
pub(super) fn padding(spent: u64, target: &Params) -> Result<Option<Params>, HashError> {
    let missing = work_of(target).saturating_sub(spent);
    // Below argon2's minimum of 8 blocks the difference is noise.
    if missing < 8 {
        return Ok(None);
    }
    let widest = u64::try_from(target.block_count()).map_err(failed)?.max(8);
    let passes = missing.div_ceil(widest);
    let blocks = (missing / passes).max(8);
    let params = Params::new(
        u32::try_from(blocks).map_err(failed)?,
        u32::try_from(passes).map_err(failed)?,
        1,
        None,
    )
    .map_err(failed)?;
    Ok(Some(params))
}

/// Burns `params`' worth of argon2 work in the worker's memory.
pub(super) fn pad_in(memory: &mut [Block], params: &Params) -> Result<(), HashError> {
    let mut output = [0u8; OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            &[],
            &[0u8; SALT_LEN],
            &mut output,
            blocks_for(memory, params)?,
        )
        .map_err(failed)
}
