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

#[cfg(test)]
mod tests {
    use super::*;

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
