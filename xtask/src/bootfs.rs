//! The boot archive `cargo xtask run` hands the kernel (QEMU `-initrd`): a
//! ustar file (read by `services::bootfs`) holding the TLS certificate chain
//! and key. On first run a local CA and a server certificate for
//! `localhost`/`127.0.0.1`/`::1` are made with the `openssl` CLI (ECDSA
//! P-256) and kept in `.rustcore/tls/`, so clients trust the same CA across
//! restarts.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::run_checked;
use crate::state::State;

/// Where the certificates live and what a client needs to trust.
#[derive(Clone, Debug)]
pub struct Certificates {
    pub ca: PathBuf,
    pub server_chain: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> Result<()> {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    run_checked(&mut cmd).context("running openssl (apt-get install openssl)")
}

/// Creates the CA and the server certificate unless they exist.
pub fn ensure_certificates(state: &State) -> Result<Certificates> {
    let dir = state.dir().join("tls");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let certificates = Certificates {
        ca: dir.join("ca.pem"),
        server_chain: dir.join("server-chain.pem"),
        server_key: dir.join("server.key"),
    };
    if certificates.ca.is_file() && certificates.server_chain.is_file() && certificates.server_key.is_file() {
        return Ok(certificates);
    }
    let p256 = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"];
    openssl(&[&p256[..], &["ca.key"]].concat(), &dir)?;
    openssl(
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            "/CN=Rustcore local CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "ca.pem",
        ],
        &dir,
    )?;
    openssl(&[&p256[..], &["server.key"]].concat(), &dir)?;
    openssl(&["req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr"], &dir)?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,DNS:*.localhost,IP:127.0.0.1,IP:::1\n\
         basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "825",
            "-sha256",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
        &dir,
    )?;
    let chain = [std::fs::read(dir.join("server.pem"))?, std::fs::read(&certificates.ca)?].concat();
    std::fs::write(&certificates.server_chain, chain)?;
    Ok(certificates)
}

/// The first admin key and the node key, made on first run and kept in
/// `.rustcore/keys/`. The kernel imports the admin key into its keystore
/// when the keystore is empty; the node key seals SigV4 secrets on the data
/// disk, so it travels in the boot archive and never on that disk.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub node_key: PathBuf,
    /// `access_key_id\nsecret\n`.
    pub admin_file: PathBuf,
    /// The admin API's bearer token (an admin API key, `rc_<id>_<secret>`).
    pub admin_token: String,
    pub admin_token_file: PathBuf,
}

fn random_bytes(n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// `len` characters of `alphabet`, uniformly (rejection of the biased tail).
fn random_text(len: usize, alphabet: &[u8]) -> Result<String> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in random_bytes(len * 2)? {
            if usize::from(byte) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(byte) % alphabet.len()]));
            }
        }
    }
    Ok(out)
}

/// Creates the admin credentials and the node key unless they exist.
pub fn ensure_credentials(state: &State) -> Result<Credentials> {
    let dir = state.dir().join("keys");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let admin_file = dir.join("admin");
    let node_key = dir.join("node.key");
    if !node_key.is_file() {
        std::fs::write(&node_key, random_bytes(32)?)?;
    }
    if !admin_file.is_file() {
        let id = format!("RC{}", random_text(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")?);
        let secret = random_text(40, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")?;
        std::fs::write(&admin_file, format!("{id}\n{secret}\n"))?;
        println!("xtask: created the admin key {id} (secret in {})", admin_file.display());
    }
    let admin_token_file = dir.join("admin-token");
    if !admin_token_file.is_file() {
        let bytes: [u8; security::apikey::RANDOM_BYTES] =
            random_bytes(security::apikey::RANDOM_BYTES)?.try_into().map_err(|_| anyhow::anyhow!("random bytes"))?;
        std::fs::write(&admin_token_file, security::apikey::ApiKey::generate(&bytes).to_text())?;
    }
    let admin_token = std::fs::read_to_string(&admin_token_file)?.trim().to_string();
    let text = std::fs::read_to_string(&admin_file)?;
    let mut lines = text.lines();
    let (Some(id), Some(secret)) = (lines.next(), lines.next()) else {
        anyhow::bail!("{} must hold the access key id and the secret on two lines", admin_file.display());
    };
    Ok(Credentials {
        access_key_id: id.trim().to_string(),
        secret_access_key: secret.trim().to_string(),
        node_key,
        admin_file,
        admin_token,
        admin_token_file,
    })
}

/// `.rustcore/env`: what `. .rustcore/env && aws s3 ls` needs.
pub fn write_env(state: &State, credentials: &Credentials, certificates: &Certificates, port: u16) -> Result<PathBuf> {
    let path = state.dir().join("env");
    let ca = std::fs::canonicalize(&certificates.ca)?;
    std::fs::write(
        &path,
        format!(
            "export AWS_ENDPOINT_URL=https://localhost:{port}\n\
             export AWS_ACCESS_KEY_ID={}\n\
             export AWS_SECRET_ACCESS_KEY={}\n\
             export AWS_CA_BUNDLE={}\n\
             export AWS_REGION=us-east-1\n",
            credentials.access_key_id,
            credentials.secret_access_key,
            ca.display()
        ),
    )?;
    Ok(path)
}

/// Packs the archive's staging directory into `.rustcore/bootfs.tar`.
pub fn pack(state: &State, certificates: &Certificates, credentials: &Credentials) -> Result<PathBuf> {
    let staging = state.dir().join("bootfs");
    let tls = staging.join("tls");
    std::fs::create_dir_all(&tls)?;
    std::fs::copy(&certificates.server_chain, tls.join("server.pem"))?;
    std::fs::copy(&certificates.server_key, tls.join("server.key"))?;
    let keys = staging.join("keys");
    std::fs::create_dir_all(&keys)?;
    std::fs::copy(&credentials.admin_file, keys.join("admin"))?;
    std::fs::copy(&credentials.node_key, keys.join("node.key"))?;
    std::fs::copy(&credentials.admin_token_file, keys.join("admin-token"))?;
    let archive = state.dir().join("bootfs.tar");
    let mut cmd = Command::new("tar");
    cmd.args(["--format=ustar", "--owner=0", "--group=0", "-cf"]).arg(&archive).arg("-C").arg(&staging).arg(".");
    run_checked(&mut cmd).context("packing the boot archive with tar")?;
    ensure!(archive.is_file(), "tar did not write {}", archive.display());
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_verifiable_chain_and_an_archive() {
        if !crate::on_path("openssl") || !crate::on_path("tar") {
            return;
        }
        let root = std::env::temp_dir().join(format!("xtask-bootfs-{}", std::process::id()));
        let state = State::at(&root);
        let certificates = ensure_certificates(&state).unwrap();
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&certificates.ca)
            .arg(state.dir().join("tls/server.pem"))
            .output()
            .unwrap();
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
        // A second call keeps the same CA.
        let ca = std::fs::read(&certificates.ca).unwrap();
        ensure_certificates(&state).unwrap();
        assert_eq!(ca, std::fs::read(&certificates.ca).unwrap());
        let credentials = ensure_credentials(&state).unwrap();
        assert!(credentials.access_key_id.starts_with("RC") && credentials.access_key_id.len() == 20);
        assert_eq!(credentials.secret_access_key.len(), 40);
        assert_eq!(ensure_credentials(&state).unwrap().secret_access_key, credentials.secret_access_key);
        let archive = pack(&state, &certificates, &credentials).unwrap();
        let bytes = std::fs::read(archive).unwrap();
        assert_eq!(&bytes[257..262], b"ustar");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
