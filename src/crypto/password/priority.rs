//! The hashing threads yield the CPU to the threads that serve calls.
//!
//! A login flood keeps every hashing thread busy, and on a small machine
//! there are as many of them as cores: the runtime's threads then wait for a
//! core behind argon2, and every other call (a ValidateSession above all)
//! waits with them. Run ten nice levels lower, a hashing thread gets about a
//! tenth of a core's share while a serving thread wants it, and all of it
//! when nothing else does: logins are slowed only by the work that is
//! actually waiting.

/// How many nice levels below the rest of the process hashing runs. The
/// Linux scheduler weighs nice 0 against nice 10 as 1024 to 110.
const HASHING_NICE_INCREMENT: i32 = 10;

/// Lowers the calling thread's CPU priority (on Linux, where a nice value
/// belongs to a thread). A refusal only costs the effect, so it is logged
/// and otherwise ignored; raising one's own nice value needs no privilege.
pub(super) fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        use std::io::Error;
        // SAFETY: getpriority/setpriority take and return plain integers;
        // with PRIO_PROCESS and who = 0 they read and set the calling
        // thread's nice value. errno is cleared first because -1 is also a
        // valid nice value.
        let lowered = unsafe {
            *libc::__errno_location() = 0;
            let current = libc::getpriority(libc::PRIO_PROCESS, 0);
            if current == -1 && Error::last_os_error().raw_os_error() != Some(0) {
                -1
            } else {
                let target = current.saturating_add(HASHING_NICE_INCREMENT).min(19);
                libc::setpriority(libc::PRIO_PROCESS, 0, target)
            }
        };
        if lowered != 0 {
            tracing::warn!(
                error = %Error::last_os_error(),
                "could not lower the hashing threads' CPU priority; logins may slow other calls"
            );
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn a_lowered_thread_runs_ten_nice_levels_below_its_parent() {
        // SAFETY: as above; plain integers in and out.
        let parent = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let child = std::thread::spawn(|| {
            super::lower_this_thread();
            // SAFETY: as above.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
        })
        .join()
        .unwrap_or(i32::MIN);
        assert_eq!(child, (parent + super::HASHING_NICE_INCREMENT).min(19));
        // The parent thread is untouched.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, parent);
    }
}
