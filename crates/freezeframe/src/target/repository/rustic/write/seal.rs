//! restic's encryption of every repository file and blob: AES-256-CTR
//! under a random 16-byte nonce, authenticated with Poly1305-AES; stored
//! as nonce ‖ ciphertext ‖ MAC (restic `doc/design.rst`, "Encryption").
//! The cipher is RustCrypto's `aes256ctr_poly1305aes`, the implementation
//! rustic_core reads with.

use aes256ctr_poly1305aes::aead::AeadInPlace;
use aes256ctr_poly1305aes::{Aes256CtrPoly1305Aes, Key, Nonce, Tag};
use rustic_core::repofile::MasterKey;

const NONCE: usize = 16;
const MAC: usize = 16;

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SealError {
    /// The master key's parts have the wrong lengths.
    #[error("the repository's master key is malformed (want 32 + 16 + 16 bytes)")]
    BadKey,
    /// No random nonce could be had from the kernel.
    #[error("no random numbers for a nonce: {0}")]
    Random(String),
    /// Too short to be sealed data, or the MAC does not match.
    #[error(
        "data does not authenticate under the repository key (damaged, or another repository's)"
    )]
    Forged,
}

/// Seals and opens with one repository's master key.
#[derive(Clone)]
pub(crate) struct Sealer(Aes256CtrPoly1305Aes);

impl Sealer {
    /// The sealer of the repository whose key file gave `key`.
    pub(crate) fn new(key: &MasterKey) -> Result<Self, SealError> {
        if key.encrypt.len() != 32 || key.mac.k.len() != 16 || key.mac.r.len() != 16 {
            return Err(SealError::BadKey);
        }
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(&key.encrypt);
        k[32..48].copy_from_slice(&key.mac.k);
        k[48..].copy_from_slice(&key.mac.r);
        Ok(Self(Aes256CtrPoly1305Aes::new(Key::from_slice(&k))))
    }

    /// `plain`, encrypted and authenticated under a fresh nonce.
    pub(crate) fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let mut out = Vec::with_capacity(NONCE + plain.len() + MAC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &[], &mut out[NONCE..])
            .map_err(|_| SealError::Forged)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// The plain text of `sealed`, if it authenticates.
    pub(crate) fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE + MAC {
            return Err(SealError::Forged);
        }
        let (nonce, rest) = sealed.split_at(NONCE);
        let (body, tag) = rest.split_at(rest.len() - MAC);
        let mut plain = body.to_vec();
        self.0
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                &[],
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| SealError::Forged)?;
        Ok(plain)
    }
}

/// Bytes sealing adds to what it seals.
pub(crate) const OVERHEAD: usize = NONCE + MAC;

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&MasterKey::new()).unwrap()
    }

    #[test]
    fn sealed_data_opens_and_any_flipped_bit_is_refused() {
        let s = sealer();
        let sealed = s.seal(b"hello restic").unwrap();
        assert_eq!(sealed.len(), 12 + OVERHEAD);
        assert_eq!(s.open(&sealed).unwrap(), b"hello restic");
        for i in [0, 16, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(matches!(s.open(&bad), Err(SealError::Forged)), "byte {i}");
        }
        assert!(matches!(sealer().open(&sealed), Err(SealError::Forged)));
        assert!(matches!(s.open(&sealed[..31]), Err(SealError::Forged)));
    }

    #[test]
    fn two_seals_of_the_same_text_differ() {
        let s = sealer();
        assert_ne!(s.seal(b"x").unwrap(), s.seal(b"x").unwrap());
    }
}
