//! Waking a connection's task from outside the runtime, cheaply.
//!
//! A task woken from inside the runtime (another task) is only queued; woken from outside it
//! (an event loop's callback between two runs of the runtime, as in an ASGI worker), tokio
//! also unparks the runtime: a system call per wake. A thread that alternates between running
//! the runtime and running something else can instead hold such wakes ([`hold`]) while it is
//! outside and [`release`] them as it enters: they are then woken inside, for nothing, and
//! before the runtime looks for work, so nothing is delayed. Per thread; off unless asked.

use std::cell::RefCell;
use std::task::Waker;

thread_local! {
    /// `Some` while wakes are held (outside the runtime).
    static HELD: RefCell<Option<Vec<Waker>>> = const { RefCell::new(None) };
}

/// Wake `waker` now, or at the next [`release`] while wakes are held.
pub fn wake(waker: Waker) {
    let waker = HELD.with(|h| match h.borrow_mut().as_mut() {
        Some(held) => {
            held.push(waker);
            None
        }
        None => Some(waker),
    });
    if let Some(w) = waker {
        w.wake();
    }
}

/// From now on, hold wakes on this thread (it leaves the runtime).
pub fn hold() {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        if h.is_none() {
            *h = Some(Vec::new());
        }
    });
}

/// Wake what was held, and wake at once from now on (the thread is inside the runtime).
pub fn release() {
    let held = HELD.with(|h| h.borrow_mut().take());
    for w in held.into_iter().flatten() {
        w.wake();
    }
}

/// Whether wakes are held now.
pub fn holding() -> bool {
    HELD.with(|h| h.borrow().is_some())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn held_wakes_happen_on_release_and_others_at_once() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        super::wake(waker.clone());
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        super::hold();
        assert!(super::holding());
        super::wake(waker.clone());
        super::wake(waker.clone());
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        super::release();
        assert!(!super::holding());
        assert_eq!(count.0.load(Ordering::Relaxed), 3);
        super::wake(waker);
        assert_eq!(count.0.load(Ordering::Relaxed), 4);
    }
}
