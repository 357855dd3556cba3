//! Executable memory: generated code is written into fresh pages, which are then made
//! read + execute (never writable and executable at once), and unmapped on drop.

/// True where code can be generated and run: x86-64 Linux with AVX2 and FMA.
pub(super) fn supported() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// True where the 512-bit loops can run as well: AVX-512F and DQ (the mask moves and the
/// bitwise float ops).
pub(super) fn supports_zmm() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// A generated function `fn(bases: *const *const u8, bytes: usize)` in executable pages.
pub(super) struct Code {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the pages are immutable once made executable; running them from several threads at
// once is what the generated code is for (it only touches its arguments and its own stack).
unsafe impl Send for Code {}
// SAFETY: as above.
unsafe impl Sync for Code {}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod sys {
    pub const PROT_READ: i32 = 1;
    pub const PROT_WRITE: i32 = 2;
    pub const PROT_EXEC: i32 = 4;
    pub const MAP_PRIVATE: i32 = 2;
    pub const MAP_ANONYMOUS: i32 = 0x20;
    extern "C" {
        pub fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut u8;
        pub fn mprotect(addr: *mut u8, len: usize, prot: i32) -> i32;
        pub fn munmap(addr: *mut u8, len: usize) -> i32;
    }
}

impl Code {
    /// Copies `code` into executable pages, or `None` when the system refuses them (out of
    /// memory, or a policy forbidding executable mappings).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    pub fn new(code: &[u8]) -> Option<Code> {
        let len = code.len().max(1);
        // SAFETY: an anonymous private mapping has no preconditions; the result is checked.
        let ptr = unsafe {
            sys::mmap(
                std::ptr::null_mut(),
                len,
                sys::PROT_READ | sys::PROT_WRITE,
                sys::MAP_PRIVATE | sys::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr as isize == -1 {
            return None;
        }
        let pages = Code { ptr, len };
        // SAFETY: the mapping is `len >= code.len()` writable bytes of our own.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), ptr, code.len()) };
        // SAFETY: the pages were mapped just above.
        let rc = unsafe { sys::mprotect(ptr, len, sys::PROT_READ | sys::PROT_EXEC) };
        // on failure `pages` unmaps them
        (rc == 0).then_some(pages)
    }

    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    pub fn new(_code: &[u8]) -> Option<Code> {
        None
    }

    /// Bytes of code and constants.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Calls the function.
    ///
    /// # Safety
    /// The code is a function of this signature, and its memory accesses are valid for
    /// these arguments.
    pub unsafe fn call(&self, bases: *const *const u8, bytes: usize) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller's contract; the pages hold a complete sysv64 function.
        unsafe {
            let f: unsafe extern "sysv64" fn(*const *const u8, usize) = std::mem::transmute(self.ptr);
            f(bases, bytes)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("jit: no code is generated on this target ({bases:?}, {bytes})")
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        // SAFETY: the pages were mapped by `new` and nothing refers to them once `self` goes.
        unsafe {
            sys::munmap(self.ptr, self.len);
        }
    }
}
