//! `/proc/<pid>/maps`: where a process mapped a file. Pure parsing; the
//! caller reads the file.

/// Start address of the mapping of the file with inode `inode` at file
/// offset 0 (where a position-independent executable's image begins).
pub fn image_start(maps: &str, inode: u64) -> Option<u64> {
    maps.lines().find_map(|line| {
        // start-end perms offset dev inode [path]
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let _perms = fields.next()?;
        let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
        let _dev = fields.next()?;
        let ino: u64 = fields.next()?.parse().ok()?;
        if ino != inode || offset != 0 {
            return None;
        }
        u64::from_str_radix(range.split('-').next()?, 16).ok()
    })
}

/// The files a process maps whose name starts with `prefix` (as
/// `libssl.so`), each once, in the order first mapped.
pub fn files_named<'a>(maps: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for line in maps.lines() {
        // start-end perms offset dev inode path: the path is the rest of
        // the line (it may hold spaces).
        let mut rest = line;
        for _ in 0..5 {
            rest = rest.trim_start();
            rest = rest.find(' ').map_or("", |at| &rest[at..]);
        }
        let path = rest.trim();
        if !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or("");
        if name.starts_with(prefix) && !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_libraries_of_a_name_once() {
        let maps = "\
7f1e2a400000-7f1e2a46c000 r--p 00000000 fd:01 2234 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1e2a46c000-7f1e2a4d4000 r-xp 0006c000 fd:01 2234 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1e2a600000-7f1e2a800000 r-xp 00000000 fd:01 2240 /opt/my app/lib/libssl.so.1.1
7f1e2a900000-7f1e2a901000 r-xp 00000000 fd:01 2241 /usr/lib/x86_64-linux-gnu/libsslx.so (deleted)
7f1e2aa00000-7f1e2aa01000 r-xp 00000000 fd:01 2242 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7ffd1c3d4000-7ffd1c3f5000 rw-p 00000000 00:00 0                          [stack]
";
        assert_eq!(
            files_named(maps, "libssl.so"),
            [
                "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                "/opt/my app/lib/libssl.so.1.1"
            ]
        );
        assert!(files_named("garbage\n", "libssl.so").is_empty());
    }

    const MAPS: &str = "\
55d4c2a00000-55d4c2b41000 r--p 00000000 fd:01 1316 /srv/app (deleted)
55d4c2b41000-55d4c2f00000 r-xp 00141000 fd:01 1316 /srv/app (deleted)
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
7ffd1c3d4000-7ffd1c3f5000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn finds_the_first_mapping_of_the_inode() {
        assert_eq!(image_start(MAPS, 1316), Some(0x55d4_c2a0_0000));
        assert_eq!(image_start(MAPS, 99), None);
        assert_eq!(image_start("garbage\n\n", 1316), None);
    }
}
