//! The boot archive ("bootfs"): configuration, the TLS certificate and key,
//! and test scenarios, handed to the kernel as a PVH module (QEMU `-initrd`).
//!
//! Format: POSIX ustar, as `tar --format=ustar` writes it. Each entry is a
//! 512-byte header (name, octal size, checksum, type flag, `ustar` magic,
//! name prefix) followed by the file's bytes padded to 512; two zero blocks
//! end the archive. Only regular files are used; directories are skipped,
//! everything else is an error. Every field is checked before it is used:
//! the archive comes from the host, but a malformed one must give an error,
//! never a panic.

use core::str;

const BLOCK: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootfsError {
    /// The archive ends inside a header or a file.
    Truncated {
        offset: usize,
    },
    BadChecksum {
        offset: usize,
    },
    BadMagic {
        offset: usize,
    },
    BadNumber {
        offset: usize,
    },
    BadName {
        offset: usize,
    },
    UnsupportedEntry {
        offset: usize,
        type_flag: u8,
    },
}

/// A file in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub path: &'a str,
    pub data: &'a [u8],
}

/// A read-only view of a ustar archive in memory.
#[derive(Clone, Copy, Debug)]
pub struct Archive<'a> {
    bytes: &'a [u8],
}

impl<'a> Archive<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Every regular file, in archive order.
    pub fn entries(&self) -> Entries<'a> {
        Entries { bytes: self.bytes, offset: 0, done: false }
    }

    /// The file at `path` (leading `./` ignored), if present and the archive
    /// is well formed up to it.
    pub fn get(&self, path: &str) -> Option<&'a [u8]> {
        let wanted = path.trim_start_matches("./");
        self.entries().map_while(Result::ok).find(|e| e.path == wanted).map(|e| e.data)
    }

    /// Checks the whole archive; the first error, if any.
    pub fn validate(&self) -> Result<usize, BootfsError> {
        let mut count = 0;
        for entry in self.entries() {
            entry?;
            count += 1;
        }
        Ok(count)
    }
}

pub struct Entries<'a> {
    bytes: &'a [u8],
    offset: usize,
    done: bool,
}

fn octal(field: &[u8], offset: usize) -> Result<usize, BootfsError> {
    let text = field.split(|&b| b == 0 || b == b' ').find(|s| !s.is_empty()).unwrap_or(b"0");
    let mut value: usize = 0;
    for &digit in text {
        if !(b'0'..=b'7').contains(&digit) {
            return Err(BootfsError::BadNumber { offset });
        }
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(usize::from(digit - b'0')))
            .ok_or(BootfsError::BadNumber { offset })?;
    }
    Ok(value)
}

fn text(field: &[u8], offset: usize) -> Result<&str, BootfsError> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    str::from_utf8(&field[..end]).map_err(|_| BootfsError::BadName { offset })
}

impl<'a> Entries<'a> {
    fn next_entry(&mut self) -> Result<Option<Entry<'a>>, BootfsError> {
        loop {
            let offset = self.offset;
            if offset == self.bytes.len() {
                return Ok(None); // no end marker: tolerated, like GNU tar
            }
            let header = self.bytes.get(offset..offset + BLOCK).ok_or(BootfsError::Truncated { offset })?;
            if header.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            let stored = octal(&header[148..156], offset)?;
            let computed: usize = header
                .iter()
                .enumerate()
                .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { usize::from(b) })
                .sum();
            if stored != computed {
                return Err(BootfsError::BadChecksum { offset });
            }
            if &header[257..262] != b"ustar" {
                return Err(BootfsError::BadMagic { offset });
            }
            let size = octal(&header[124..136], offset)?;
            let data_start = offset + BLOCK;
            let data_end = data_start.checked_add(size).ok_or(BootfsError::BadNumber { offset })?;
            let data = self.bytes.get(data_start..data_end).ok_or(BootfsError::Truncated { offset })?;
            self.offset = data_start + size.next_multiple_of(BLOCK).min(self.bytes.len() - data_start);
            let type_flag = header[156];
            match type_flag {
                b'0' | 0 => {}
                b'5' => continue, // directory
                _ => return Err(BootfsError::UnsupportedEntry { offset, type_flag }),
            }
            let name = text(&header[0..100], offset)?;
            let prefix = text(&header[345..500], offset)?;
            let path = if prefix.is_empty() {
                name
            } else {
                // Long paths are split as prefix "/" name; we only need the
                // short form for our own files and refuse to guess.
                return Err(BootfsError::BadName { offset });
            };
            return Ok(Some(Entry { path: path.trim_start_matches("./"), data }));
        }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, BootfsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// A ustar writer for tests (the host tool uses the same layout).
    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in files {
            let mut header = [0u8; BLOCK];
            header[..name.len()].copy_from_slice(name.as_bytes());
            header[100..108].copy_from_slice(b"0000644\0");
            header[124..136].copy_from_slice(std::format!("{:011o}\0", data.len()).as_bytes());
            header[136..148].copy_from_slice(b"00000000000\0");
            header[156] = b'0';
            header[257..263].copy_from_slice(b"ustar\0");
            header[263..265].copy_from_slice(b"00");
            header[148..156].fill(b' ');
            let sum: usize = header.iter().map(|&b| usize::from(b)).sum();
            header[148..156].copy_from_slice(std::format!("{sum:06o}\0 ").as_bytes());
            out.extend_from_slice(&header);
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(BLOCK), 0);
        }
        out.extend_from_slice(&[0u8; 2 * BLOCK]);
        out
    }

    #[test]
    fn reads_files() {
        let bytes = archive(&[("tls/server.pem", b"CERT"), ("empty", b""), ("config", &[7u8; 1000])]);
        let archive = Archive::new(&bytes);
        assert_eq!(archive.validate(), Ok(3));
        assert_eq!(archive.get("tls/server.pem"), Some(&b"CERT"[..]));
        assert_eq!(archive.get("./empty"), Some(&b""[..]));
        assert_eq!(archive.get("config").map(<[u8]>::len), Some(1000));
        assert_eq!(archive.get("missing"), None);
    }

    #[test]
    fn reads_what_gnu_tar_writes() {
        // `tar --format=ustar -cf - hello.txt` of a file holding "hello\n".
        let dir = std::env::temp_dir().join(std::format!("bootfs-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        std::fs::write(dir.join("tls/hello.txt"), b"hello\n").unwrap();
        let output =
            std::process::Command::new("tar").args(["--format=ustar", "-cf", "-", "-C"]).arg(&dir).arg(".").output();
        let Ok(output) = output else { return }; // no tar on this host
        std::fs::remove_dir_all(&dir).unwrap();
        let archive = Archive::new(&output.stdout);
        assert_eq!(archive.get("tls/hello.txt"), Some(&b"hello\n"[..]));
        assert!(archive.validate().is_ok());
    }

    #[test]
    fn malformed_archives_are_errors_not_panics() {
        let good = archive(&[("a", b"0123456789")]);
        // Truncated anywhere.
        for cut in 0..good.len() {
            let _ = Archive::new(&good[..cut]).validate();
        }
        assert_eq!(Archive::new(&good[..100]).validate(), Err(BootfsError::Truncated { offset: 0 }));
        assert_eq!(Archive::new(&good[..515]).validate(), Err(BootfsError::Truncated { offset: 0 }));
        // Every single-byte corruption of the header.
        for index in 0..BLOCK {
            let mut bad = good.clone();
            bad[index] ^= 0x5A;
            let _ = Archive::new(&bad).validate();
        }
        let mut bad_sum = good.clone();
        bad_sum[0] = b'b';
        assert_eq!(Archive::new(&bad_sum).validate(), Err(BootfsError::BadChecksum { offset: 0 }));
        // A huge size field.
        let mut huge = archive(&[("a", b"")]);
        huge[124..136].copy_from_slice(b"77777777777\0");
        huge[148..156].fill(b' ');
        let sum: usize = huge[..BLOCK].iter().map(|&b| usize::from(b)).sum();
        huge[148..156].copy_from_slice(std::format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(Archive::new(&huge).validate(), Err(BootfsError::Truncated { offset: 0 }));
    }
}
