//! Copying and clearing structs as 8-byte words. In a kernel program a
//! struct assignment or `..Default::default()` compiles to a call to a
//! byte-by-byte `memmove` or `memset` loop: 40 bytes cost a few hundred
//! instructions, on every syscall of a traced socket.

/// `*dst = *src` for an 8-aligned type whose size is a multiple of 8.
#[inline(always)]
pub fn copy<T: Copy>(dst: &mut T, src: &T) {
    const { assert!(size_of::<T>() % 8 == 0 && align_of::<T>() >= 8) };
    let d = dst as *mut T as *mut u64;
    let s = src as *const T as *const u64;
    let mut i = 0;
    while i < size_of::<T>() / 8 {
        // Volatile: a plain loop is turned back into a `memmove` call.
        // SAFETY: both point to a whole, 8-aligned T; i < size / 8.
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        i += 1;
    }
}

/// Every byte of `dst` (an 8-aligned type whose size is a multiple of 8)
/// zero, padding included: `T::default()` for the plain-data types here.
#[inline(always)]
pub fn zero<T: Copy>(dst: &mut T) {
    const { assert!(size_of::<T>() % 8 == 0 && align_of::<T>() >= 8) };
    let d = dst as *mut T as *mut u64;
    let mut i = 0;
    while i < size_of::<T>() / 8 {
        // SAFETY: points to a whole, 8-aligned T; i < size / 8.
        unsafe { core::ptr::write_volatile(d.add(i), 0) };
        i += 1;
    }
}
