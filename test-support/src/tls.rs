//! A certificate authority made for one test, and TLS for the test servers: so a test can serve
//! HTTPS on loopback, have a process trust it (through `SSL_CERT_FILE`, as a user would add a
//! private CA), or not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A fresh CA and a server certificate it signed for `localhost` and `127.0.0.1`.
pub struct TestCa {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
    /// Where [`TestCa::ca_file`] wrote the CA, removed on drop.
    directory: PathBuf,
}

impl TestCa {
    pub fn new() -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "microservice-stack test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("a CA key"))
            .expect("a self-signed CA");
        let key = KeyPair::generate().expect("a server key");
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server parameters")
            .signed_by(&key, &ca)
            .expect("a server certificate");
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(server.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("a TLS server configuration");
        Self {
            ca_pem: ca.as_ref().pem(),
            server: Arc::new(server),
            directory: std::env::temp_dir().join(format!("test-ca-{}", uuid::Uuid::new_v4())),
        }
    }

    /// The CA's certificate in a PEM file, for `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> PathBuf {
        std::fs::create_dir_all(&self.directory).expect("a directory for the CA");
        let file = self.directory.join("ca.pem");
        std::fs::write(&file, &self.ca_pem).expect("write the CA");
        file
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.server))
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new(&self.directory));
    }
}

/// A listener that serves TLS: connections whose handshake fails (a client that does not trust
/// the certificate) are dropped, and the next one is taken.
pub(crate) struct TlsListener {
    pub(crate) tcp: TcpListener,
    pub(crate) acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, address)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(stream) = self.acceptor.accept(stream).await {
                return (stream, address);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
