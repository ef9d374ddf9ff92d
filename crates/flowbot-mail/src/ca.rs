//! `ca_file`: the private CA a desk's own mail server is signed by, trusted for that
//! destination's TLS besides the public (webpki) roots; read and checked when the settings load.

use std::io::Read;
use std::path::Path;

use lettre::transport::smtp::client::{Certificate, TlsParameters};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use thiserror::Error;

/// The largest CA file read (a bundle of a few certificates is a few kilobytes).
const MAX_CA_FILE: u64 = 1024 * 1024;

/// The certificates of a CA file, each usable as a root of trust.
#[derive(Debug, Clone)]
pub struct Ca {
    certificates: Vec<Certificate>,
}

/// Why a CA file cannot be used. The messages name the file, never its content.
#[derive(Debug, Error)]
pub enum CaError {
    #[error("cannot read the CA file {0}: {1}")]
    Read(String, std::io::Error),
    #[error("the CA file {0} is larger than {MAX_CA_FILE} bytes")]
    TooLarge(String),
    #[error("the CA file {0} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate(String),
    #[error("the CA file {0} is not a PEM certificate: {1}")]
    Invalid(String, String),
}

impl Ca {
    /// Reads and checks the PEM file at `path`.
    pub fn read(path: &Path) -> Result<Self, CaError> {
        let name = path.display().to_string();
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_CA_FILE + 1).read_to_end(&mut bytes))
            .map_err(|err| CaError::Read(name.clone(), err))?;
        if bytes.len() as u64 > MAX_CA_FILE {
            return Err(CaError::TooLarge(name));
        }
        Self::from_pem(&name, &bytes)
    }

    /// Checks the certificates of a PEM text (`name` is the file, for the messages): at least
    /// one, and each one a certificate rustls can take as a root.
    pub fn from_pem(name: &str, pem: &[u8]) -> Result<Self, CaError> {
        let invalid = |err: String| CaError::Invalid(name.to_owned(), err);
        let ders = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| invalid(err.to_string()))?;
        if ders.is_empty() {
            return Err(CaError::NoCertificate(name.to_owned()));
        }
        let certificates = ders
            .into_iter()
            .map(|der| Certificate::from_der(der.to_vec()).map_err(|e| invalid(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let ca = Ca { certificates };
        // rustls parses each root when it is added: a certificate it cannot use fails here.
        ca.tls_parameters("localhost".to_owned()).map_err(|err| invalid(err.to_string()))?;
        Ok(ca)
    }

    /// How many certificates the file holds.
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    /// Never true: a CA file holds at least one certificate.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    /// TLS to `domain` trusting the public roots and this CA.
    pub(crate) fn tls_parameters(
        &self,
        domain: String,
    ) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        self.certificates
            .iter()
            .fold(TlsParameters::builder(domain), |builder, c| {
                builder.add_root_certificate(c.clone())
            })
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(Ca::read(&missing), Err(CaError::Read(..))));
        let key =
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        for (text, what) in [
            (&b"not a certificate"[..], "no PEM certificate"),
            (&key[..], "no PEM certificate"),
            (
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                "not a PEM certificate",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not a PEM certificate",
            ),
        ] {
            let err = Ca::from_pem("ca.pem", text).unwrap_err().to_string();
            assert!(err.contains("ca.pem") && err.contains(what), "{err}");
        }
    }
}
