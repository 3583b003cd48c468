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

/// Packs the archive's staging directory into `.rustcore/bootfs.tar`.
pub fn pack(state: &State, certificates: &Certificates) -> Result<PathBuf> {
    let staging = state.dir().join("bootfs");
    let tls = staging.join("tls");
    std::fs::create_dir_all(&tls)?;
    std::fs::copy(&certificates.server_chain, tls.join("server.pem"))?;
    std::fs::copy(&certificates.server_key, tls.join("server.key"))?;
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
        let archive = pack(&state, &certificates).unwrap();
        let bytes = std::fs::read(archive).unwrap();
        assert_eq!(&bytes[257..262], b"ustar");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
