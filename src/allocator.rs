//! How the process asks glibc's allocator to behave.
//!
//! An argon2id password hash (the admin bootstrap on first start, every login) allocates one block
//! of about 19 MiB and frees it. glibc serves blocks above its mmap threshold with `mmap` and gives
//! them back on free, but it raises that threshold to the size of the last such block it freed, so
//! the next hash lands in the heap and its 19 MiB stay resident for good: measured on three idle
//! replicas, two sat at 64 MiB RSS and one at 45 MiB depending on the order of their first hashes.
//! A fixed threshold keeps every large block on `mmap`, so it leaves with its free.

/// Blocks from this size up are mapped on their own and returned to the system when freed. Large
/// enough that the request path (buffers of a few hundred KiB at most) never reaches it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 1024 * 1024;

/// Fix glibc's mmap threshold (setting it turns its dynamic raising off). Called once at start.
pub fn return_large_blocks_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters and takes glibc's own locks.
        let accepted = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
        if accepted != 1 {
            tracing::warn!("the allocator refused a fixed mmap threshold; idle memory may stay higher");
        }
    }
}
