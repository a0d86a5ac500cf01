//! Safe extraction of release archives (.zip, .tar.gz). An archive is data from the network even
//! when its checksum matches a pin (the pin may be the user's own), so every entry is checked:
//! names that leave the target (absolute, drive letters, `..`) and links whose target leaves it
//! are refused, not skipped; so are devices and FIFOs. Sizes are bounded three ways: the entry
//! count, the total expanded size, and the expansion ratio (a zip bomb declares small and inflates
//! big; the bytes actually written are counted, whatever the headers say). Links are created after
//! every regular file, so no file is ever written through a link.

use crate::error::{Error, Result};
use serde_json::json;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use super::pins::ArchiveFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: u64,
    pub max_total_bytes: u64,
    /// Largest expanded/compressed ratio, for entries (zip) or archives (tar.gz) over 1 MiB.
    pub max_ratio: u64,
}

impl Default for Limits {
    /// Real releases: tens to a few hundred entries, under 1.5 GiB expanded (the CUDA runtime
    /// archives are the largest), ratios under 10.
    fn default() -> Self {
        Limits {
            max_entries: 10_000,
            max_total_bytes: 4 << 30,
            max_ratio: 200,
        }
    }
}

const RATIO_FLOOR: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub completed_entries: u64,
    pub total_entries: u64,
    pub written_bytes: u64,
    pub total_uncompressed_bytes: u64,
}

fn refuse(archive: &Path, what: String) -> Error {
    Error::binary(
        format!("Refusing to extract {}: {what}", archive.display()),
        json!({
            "code": "BINARY_ARCHIVE_UNSAFE",
            "archive": archive.display().to_string(),
            "suggestion": "The archive is not a genuine release build. Check the manifest's URL and checksum (or the mirror), then try again.",
        }),
    )
}

fn io_err(context: &str, p: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull {
        return super::no_space(p, &e.to_string());
    }
    Error::io(context, p, &e)
}

/// The entry name as a path relative to the target, or `Err` when it would leave it. `Ok(None)`
/// for the root itself (`./`).
pub fn safe_relative(name: &str) -> std::result::Result<Option<PathBuf>, String> {
    let portable = name.replace('\\', "/");
    if portable.starts_with('/') {
        return Err(format!("entry {name:?} is an absolute path"));
    }
    let b = portable.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        return Err(format!("entry {name:?} names a drive"));
    }
    let mut out = PathBuf::new();
    for part in portable.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("entry {name:?} leaves the target folder")),
            p => {
                if p.contains('\0') {
                    return Err(format!("entry {name:?} has a NUL byte"));
                }
                out.push(p)
            }
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Where a link at `link` (relative) pointing at `target` ends up, relative to the root; `None`
/// when it leaves the root or is absolute.
fn resolve_link(link: &Path, target: &str) -> Option<PathBuf> {
    let t = target.replace('\\', "/");
    if t.starts_with('/') || (t.len() >= 2 && t.as_bytes()[1] == b':') {
        return None;
    }
    let mut stack: Vec<String> = link
        .parent()
        .into_iter()
        .flat_map(|p| p.components())
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    for part in t.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                stack.pop()?;
            }
            p => stack.push(p.to_string()),
        }
    }
    if stack.is_empty() {
        return None;
    }
    Some(stack.iter().collect())
}

enum Deferred {
    Symlink { at: PathBuf, target: String },
    Hardlink { at: PathBuf, target: PathBuf },
}

struct Out<'a> {
    archive: &'a Path,
    dest: &'a Path,
    limits: Limits,
    written: u64,
    files: Vec<String>,
    deferred: Vec<Deferred>,
}

fn portable(rel: &Path) -> String {
    rel.to_string_lossy().replace('\\', "/")
}

impl Out<'_> {
    /// Writes one regular file, refusing it once more than `declared` bytes (or the total limit)
    /// arrive.
    fn write_file(&mut self, rel: &Path, mut r: impl Read, declared: u64, mode: u32) -> Result<()> {
        let path = self.dest.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| io_err("Failed to create directory", parent, e))?;
        }
        let _ = std::fs::remove_file(&path);
        let mut f = File::create(&path).map_err(|e| io_err("Failed to create", &path, e))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut n_file = 0u64;
        loop {
            let n = r.read(&mut buf).map_err(|e| {
                refuse(
                    self.archive,
                    format!("entry {} cannot be read: {e}", portable(rel)),
                )
            })?;
            if n == 0 {
                break;
            }
            n_file += n as u64;
            self.written += n as u64;
            if n_file > declared {
                return Err(refuse(
                    self.archive,
                    format!(
                        "entry {} expands past the {declared} bytes its header declares",
                        portable(rel)
                    ),
                ));
            }
            if self.written > self.limits.max_total_bytes {
                return Err(refuse(
                    self.archive,
                    format!("it expands past {} bytes", self.limits.max_total_bytes),
                ));
            }
            f.write_all(&buf[..n])
                .map_err(|e| io_err("Failed to write", &path, e))?;
        }
        f.sync_all()
            .map_err(|e| io_err("Failed to write", &path, e))?;
        drop(f);
        set_mode(&path, mode);
        self.files.push(portable(rel));
        Ok(())
    }

    fn check_link(&self, at: &Path, target: &str) -> Result<()> {
        if resolve_link(at, target).is_none() {
            return Err(refuse(
                self.archive,
                format!(
                    "link {} points outside the target folder ({target})",
                    portable(at)
                ),
            ));
        }
        Ok(())
    }

    /// Creates the links once every file exists; none is created under another link.
    fn finish_links(&mut self) -> Result<()> {
        for d in std::mem::take(&mut self.deferred) {
            let at = match &d {
                Deferred::Symlink { at, .. } | Deferred::Hardlink { at, .. } => at.clone(),
            };
            let mut anc = PathBuf::new();
            for c in at.parent().into_iter().flat_map(|p| p.components()) {
                anc.push(c);
                let meta = std::fs::symlink_metadata(self.dest.join(&anc));
                if meta.map(|m| m.file_type().is_symlink()).unwrap_or(false) {
                    return Err(refuse(
                        self.archive,
                        format!("entry {} lies under a link", portable(&at)),
                    ));
                }
            }
            let path = self.dest.join(&at);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| io_err("Failed to create directory", parent, e))?;
            }
            let _ = std::fs::remove_file(&path);
            match d {
                Deferred::Symlink { target, .. } => {
                    #[cfg(unix)]
                    std::os::unix::fs::symlink(&target, &path)
                        .map_err(|e| io_err("Failed to create link", &path, e))?;
                    #[cfg(not(unix))]
                    {
                        // Windows needs a privilege for symlinks: a copy of the target serves.
                        let resolved = self.dest.join(resolve_link(&at, &target).unwrap());
                        if resolved.is_file() {
                            std::fs::copy(&resolved, &path)
                                .map_err(|e| io_err("Failed to copy", &path, e))?;
                        }
                    }
                }
                Deferred::Hardlink { target, .. } => {
                    let src = self.dest.join(&target);
                    std::fs::copy(&src, &path).map_err(|e| io_err("Failed to copy", &src, e))?;
                }
            }
            self.files.push(portable(&at));
        }
        Ok(())
    }
}

fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Never setuid/setgid/sticky; always readable and writable by the owner.
        let m = (mode & 0o777) | 0o600;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(m));
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

fn relative_or_refuse(archive: &Path, name: &str) -> Result<Option<PathBuf>> {
    safe_relative(name).map_err(|why| refuse(archive, why))
}

/// Extracts `archive` into `dest` (created), returning the files written, relative with `/`.
pub fn extract(
    archive: &Path,
    format: ArchiveFormat,
    dest: &Path,
    limits: Limits,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Vec<String>> {
    std::fs::create_dir_all(dest).map_err(|e| io_err("Failed to create directory", dest, e))?;
    let mut out = Out {
        archive,
        dest,
        limits,
        written: 0,
        files: Vec::new(),
        deferred: Vec::new(),
    };
    match format {
        ArchiveFormat::Zip => extract_zip(&mut out, on_progress)?,
        ArchiveFormat::TarGz => extract_tar_gz(&mut out, on_progress)?,
    }
    out.finish_links()?;
    Ok(out.files)
}

fn extract_zip(out: &mut Out<'_>, on_progress: &mut dyn FnMut(Progress)) -> Result<()> {
    let archive = out.archive;
    let f = File::open(archive).map_err(|e| io_err("Failed to open", archive, e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(f))
        .map_err(|e| refuse(archive, format!("it is not a readable zip archive ({e})")))?;
    let total_entries = zip.len() as u64;
    if total_entries > out.limits.max_entries {
        return Err(refuse(
            archive,
            format!(
                "it has {total_entries} entries (more than {})",
                out.limits.max_entries
            ),
        ));
    }
    let mut declared_total = 0u64;
    for i in 0..zip.len() {
        let e = zip
            .by_index_raw(i)
            .map_err(|e| refuse(archive, format!("entry {i} is unreadable ({e})")))?;
        declared_total = declared_total.saturating_add(e.size());
        let (size, packed) = (e.size(), e.compressed_size());
        if size > RATIO_FLOOR && packed.saturating_mul(out.limits.max_ratio) < size {
            return Err(refuse(
                archive,
                format!(
                    "entry {} expands {packed} bytes into {size} (a zip bomb?)",
                    e.name()
                ),
            ));
        }
    }
    if declared_total > out.limits.max_total_bytes {
        return Err(refuse(
            archive,
            format!(
                "it declares {declared_total} expanded bytes (more than {})",
                out.limits.max_total_bytes
            ),
        ));
    }
    let mut p = Progress {
        total_entries,
        total_uncompressed_bytes: declared_total,
        ..Progress::default()
    };
    for i in 0..zip.len() {
        let entry = zip
            .by_index(i)
            .map_err(|e| refuse(archive, format!("entry {i} is unreadable ({e})")))?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if let Some(rel) = relative_or_refuse(archive, &name)? {
            let mode = entry.unix_mode().unwrap_or(0o644);
            if entry.is_symlink() {
                let mut target = String::new();
                entry
                    .take(4096)
                    .read_to_string(&mut target)
                    .map_err(|e| refuse(archive, format!("link {name} is unreadable ({e})")))?;
                out.check_link(&rel, &target)?;
                out.deferred.push(Deferred::Symlink { at: rel, target });
            } else if entry.is_dir() {
                let d = out.dest.join(&rel);
                std::fs::create_dir_all(&d)
                    .map_err(|e| io_err("Failed to create directory", &d, e))?;
            } else if mode & 0o170000 != 0 && mode & 0o170000 != 0o100000 {
                return Err(refuse(
                    archive,
                    format!("entry {name} is not a regular file"),
                ));
            } else {
                let size = entry.size();
                out.write_file(&rel, entry, size, mode)?;
            }
        }
        p.completed_entries += 1;
        p.written_bytes = out.written;
        on_progress(p);
    }
    Ok(())
}

fn open_tar(archive: &Path) -> Result<tar::Archive<flate2::read::GzDecoder<BufReader<File>>>> {
    let f = File::open(archive).map_err(|e| io_err("Failed to open", archive, e))?;
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(
        BufReader::new(f),
    )))
}

/// A gzip stream has no index: a first pass counts entries and bytes (and applies the limits
/// before anything is written); the second extracts.
fn extract_tar_gz(out: &mut Out<'_>, on_progress: &mut dyn FnMut(Progress)) -> Result<()> {
    let archive = out.archive;
    let packed = std::fs::metadata(archive)
        .map_err(|e| io_err("Failed to open", archive, e))?
        .len();
    let unreadable = |e: std::io::Error| {
        refuse(
            archive,
            format!("it is not a readable .tar.gz archive ({e})"),
        )
    };
    let mut p = Progress::default();
    {
        let mut a = open_tar(archive)?;
        for entry in a.entries().map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            p.total_entries += 1;
            p.total_uncompressed_bytes = p
                .total_uncompressed_bytes
                .saturating_add(entry.header().size().unwrap_or(0));
            if p.total_entries > out.limits.max_entries {
                return Err(refuse(
                    archive,
                    format!("it has more than {} entries", out.limits.max_entries),
                ));
            }
            if p.total_uncompressed_bytes > out.limits.max_total_bytes {
                return Err(refuse(
                    archive,
                    format!("it expands past {} bytes", out.limits.max_total_bytes),
                ));
            }
        }
    }
    if p.total_uncompressed_bytes > RATIO_FLOOR
        && packed.saturating_mul(out.limits.max_ratio) < p.total_uncompressed_bytes
    {
        return Err(refuse(
            archive,
            format!(
                "it expands {packed} bytes into {} (a decompression bomb?)",
                p.total_uncompressed_bytes
            ),
        ));
    }
    let mut a = open_tar(archive)?;
    for entry in a.entries().map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if let Some(rel) = relative_or_refuse(archive, &name)? {
            use tar::EntryType as T;
            match kind {
                T::Regular | T::Continuous => {
                    let mode = entry.header().mode().unwrap_or(0o644);
                    let size = entry.size();
                    out.write_file(&rel, entry, size, mode)?;
                }
                T::Directory => {
                    let d = out.dest.join(&rel);
                    std::fs::create_dir_all(&d)
                        .map_err(|e| io_err("Failed to create directory", &d, e))?;
                }
                T::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    out.check_link(&rel, &target)?;
                    out.deferred.push(Deferred::Symlink { at: rel, target });
                }
                T::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let Some(t) = safe_relative(&target).ok().flatten() else {
                        return Err(refuse(
                            archive,
                            format!("hard link {name} points outside the target folder ({target})"),
                        ));
                    };
                    out.deferred.push(Deferred::Hardlink { at: rel, target: t });
                }
                T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {}
                other => {
                    return Err(refuse(
                        archive,
                        format!("entry {name} is a {other:?}, not a file, folder or link"),
                    ))
                }
            }
        }
        p.completed_entries += 1;
        p.written_bytes = out.written;
        on_progress(p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn limits() -> Limits {
        Limits::default()
    }

    fn zip_with(entries: &[(&str, &[u8])], link: Option<(&str, &str)>) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (n, b) in entries {
            w.start_file(*n, o).unwrap();
            w.write_all(b).unwrap();
        }
        if let Some((at, target)) = link {
            w.add_symlink(at, target, o).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn tgz_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let raw = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).unwrap();
        gz.finish().unwrap()
    }

    fn run(
        bytes: &[u8],
        fmt: ArchiveFormat,
        l: Limits,
    ) -> (tempfile::TempDir, Result<Vec<String>>) {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join(format!("a{}", fmt.extension()));
        std::fs::write(&a, bytes).unwrap();
        let r = extract(&a, fmt, &d.path().join("out"), l, &mut |_| {});
        (d, r)
    }

    fn raw_header(name: &[u8], kind: tar::EntryType, link: &[u8], size: u64) -> tar::Header {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o755);
        h.set_cksum();
        h
    }

    #[test]
    fn names_that_leave_are_refused() {
        assert!(safe_relative("../x").is_err());
        assert!(safe_relative("a/../../x").is_err());
        assert!(safe_relative("/etc/passwd").is_err());
        assert!(safe_relative("C:/x").is_err());
        assert!(safe_relative("a\\..\\..\\x").is_err());
        assert_eq!(safe_relative("./a/b").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(safe_relative("./").unwrap(), None);
        assert_eq!(
            resolve_link(Path::new("lib/libx.so"), "libx.so.1"),
            Some(PathBuf::from("lib/libx.so.1"))
        );
        assert_eq!(resolve_link(Path::new("lib/x"), "../../etc"), None);
        assert_eq!(resolve_link(Path::new("x"), "/etc/passwd"), None);
    }

    #[test]
    fn zip_extracts_files_and_inner_links() {
        let z = zip_with(
            &[("bin/sd-server", b"#!/bin/sh\n")],
            Some(("bin/sd", "sd-server")),
        );
        let (d, r) = run(&z, ArchiveFormat::Zip, limits());
        let files = r.unwrap();
        assert_eq!(files, ["bin/sd-server", "bin/sd"]);
        assert_eq!(
            std::fs::read(d.path().join("out/bin/sd")).unwrap(),
            b"#!/bin/sh\n"
        );
    }

    #[test]
    fn zip_traversal_and_outside_links_are_refused() {
        let z = zip_with(&[("../evil", b"x")], None);
        let (d, r) = run(&z, ArchiveFormat::Zip, limits());
        assert!(r.unwrap_err().to_string().contains("leaves the target"));
        assert!(!d.path().join("evil").exists());
        let z = zip_with(&[("ok", b"x")], Some(("escape", "../../etc/passwd")));
        let (d, r) = run(&z, ArchiveFormat::Zip, limits());
        assert!(r.unwrap_err().to_string().contains("points outside"));
        assert!(std::fs::symlink_metadata(d.path().join("out/escape")).is_err());
    }

    #[test]
    fn zip_bomb_and_entry_count_are_refused() {
        let zeros = vec![0u8; 8 << 20];
        let z = zip_with(&[("big", &zeros)], None);
        let (_d, r) = run(&z, ArchiveFormat::Zip, limits());
        assert!(r.unwrap_err().to_string().contains("zip bomb"));
        let small = Limits {
            max_total_bytes: 1000,
            ..limits()
        };
        let (_d, r) = run(
            &zip_with(&[("a", &[1u8; 2000])], None),
            ArchiveFormat::Zip,
            small,
        );
        assert!(r.unwrap_err().to_string().contains("declares 2000"));
        let few = Limits {
            max_entries: 2,
            ..limits()
        };
        let z = zip_with(&[("a", b"1"), ("b", b"2"), ("c", b"3")], None);
        let (_d, r) = run(&z, ArchiveFormat::Zip, few);
        assert!(r.unwrap_err().to_string().contains("3 entries"));
    }

    #[test]
    fn tar_gz_extracts_and_guards() {
        let good = tgz_with(|b| {
            let mut h = raw_header(b"build/bin/llama-server", tar::EntryType::Regular, b"", 3);
            h.set_cksum();
            b.append(&h, &b"abc"[..]).unwrap();
            let h = raw_header(
                b"build/bin/libl.so",
                tar::EntryType::Symlink,
                b"llama-server",
                0,
            );
            b.append(&h, std::io::empty()).unwrap();
            let h = raw_header(
                b"build/bin/hard",
                tar::EntryType::Link,
                b"build/bin/llama-server",
                0,
            );
            b.append(&h, std::io::empty()).unwrap();
        });
        let (d, r) = run(&good, ArchiveFormat::TarGz, limits());
        assert_eq!(r.unwrap().len(), 3);
        assert_eq!(
            std::fs::read(d.path().join("out/build/bin/hard")).unwrap(),
            b"abc"
        );

        for (name, kind, link, want) in [
            (
                &b"../x"[..],
                tar::EntryType::Regular,
                &b""[..],
                "leaves the target",
            ),
            (b"/abs", tar::EntryType::Regular, b"", "absolute"),
            (
                b"l",
                tar::EntryType::Symlink,
                b"/etc/passwd",
                "points outside",
            ),
            (b"l", tar::EntryType::Symlink, b"../..", "points outside"),
            (
                b"h",
                tar::EntryType::Link,
                b"../../etc/passwd",
                "points outside",
            ),
            (b"dev", tar::EntryType::Char, b"", "not a file"),
        ] {
            let bad = tgz_with(|b| {
                let h = raw_header(name, kind, link, 0);
                b.append(&h, std::io::empty()).unwrap();
            });
            let (_d, r) = run(&bad, ArchiveFormat::TarGz, limits());
            let m = r.unwrap_err().to_string();
            assert!(m.contains(want), "{m}");
        }
    }

    #[test]
    fn tar_gz_bomb_is_refused_before_writing() {
        let zeros = vec![0u8; 16 << 20];
        let bomb = tgz_with(|b| {
            let h = raw_header(b"zeros", tar::EntryType::Regular, b"", zeros.len() as u64);
            b.append(&h, &zeros[..]).unwrap();
        });
        let (d, r) = run(&bomb, ArchiveFormat::TarGz, limits());
        assert!(r.unwrap_err().to_string().contains("decompression bomb"));
        assert!(!d.path().join("out/zeros").exists());
    }

    #[test]
    fn a_file_never_lands_through_a_link() {
        // A link to a folder inside, then a link created under it: refused.
        let z = tgz_with(|b| {
            let h = raw_header(b"d/f", tar::EntryType::Regular, b"", 1);
            b.append(&h, &b"x"[..]).unwrap();
            let h = raw_header(b"l", tar::EntryType::Symlink, b"d", 0);
            b.append(&h, std::io::empty()).unwrap();
            let h = raw_header(b"l/m", tar::EntryType::Symlink, b"f", 0);
            b.append(&h, std::io::empty()).unwrap();
        });
        let (_d, r) = run(&z, ArchiveFormat::TarGz, limits());
        assert!(r.unwrap_err().to_string().contains("under a link"));
    }
}
