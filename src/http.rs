//! The shared HTTP client. rustls with the ring provider (builds faster than aws-lc) and the
//! platform certificate verifier, so corporate and system CAs keep working.

use std::sync::OnceLock;
use std::time::Duration;

fn install_crypto_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Fails only when another provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client for downloads and metadata reads. Redirects are followed by reqwest, which drops
/// `Authorization` when a redirect leaves the original host.
pub fn client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            install_crypto_provider();
            reqwest::Client::builder()
                .user_agent(concat!("genai-electron-rs/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(30))
                .build()
                .expect("the HTTP client configuration is static and valid")
        })
        .clone()
}
