//! Epoch permutations computed ahead on a thread of their own while the GPU
//! works.
//!
//! Shuffling a million-row epoch takes ~12 ms on the host. Computed when a
//! submission needs it, that time is GPU idle time at the start of every
//! `run` (the queue is empty after the previous `take_loss`); computed
//! ahead, it overlaps the GPU's work on earlier epochs. The worker is a
//! plain thread, not a rayon task: `take` blocks on it, and a rayon worker
//! blocking on a job queued behind itself could wait forever.

use std::collections::VecDeque;
use std::sync::mpsc;

use crate::train::BatchOrder;

pub struct PermutationPrefetch {
    order: BatchOrder,
    /// How many epochs after the one taken are requested.
    depth: usize,
    /// Epochs asked of the worker and not taken yet, ascending.
    requested: VecDeque<usize>,
    requests: mpsc::Sender<usize>,
    /// The worker's answers, in the order asked (stale ones included).
    results: mpsc::Receiver<(usize, Vec<u32>)>,
}

/// Most bytes of permutations computed ahead. Past it an epoch is so long
/// (10⁸ rows: 400 MB a permutation, ~390 000 steps at batch 256) that a
/// shuffle on the spot costs nothing worth the memory.
const AHEAD_BYTES: usize = 64 << 20;

impl PermutationPrefetch {
    pub fn new(order: BatchOrder, depth: usize) -> Self {
        let depth = depth.min(AHEAD_BYTES / (order.rows * 4).max(1));
        let (requests, todo) = mpsc::channel::<usize>();
        let (done, results) = mpsc::channel();
        let worker_order = order.clone();
        // Ends when the trainer drops `requests` (or stops reading).
        let spawned = std::thread::Builder::new()
            .name("mdn epoch shuffles".into())
            .spawn(move || {
                for epoch in todo {
                    if done.send((epoch, worker_order.permutation(epoch))).is_err() {
                        break;
                    }
                }
            });
        // Without a thread every `take` computes on the spot.
        let depth = if spawned.is_ok() { depth } else { 0 };
        PermutationPrefetch {
            order,
            depth,
            requested: VecDeque::new(),
            requests,
            results,
        }
    }

    /// `order.permutation(epoch)`: waits for the worker if it was asked
    /// for, computes it here if not; then asks for the `depth` epochs after
    /// it.
    pub fn take(&mut self, epoch: usize) -> Vec<u32> {
        while self.requested.front().is_some_and(|&e| e < epoch) {
            self.requested.pop_front();
        }
        let mut perm = None;
        if self.requested.front() == Some(&epoch) {
            self.requested.pop_front();
            // Answers come in the order asked; older ones are stale. A
            // stale answer for this same epoch is the same permutation.
            while let Ok((e, p)) = self.results.recv() {
                if e == epoch {
                    perm = Some(p);
                    break;
                }
            }
        } else {
            self.requested.clear();
        }
        let perm = perm.unwrap_or_else(|| self.order.permutation(epoch));
        let mut next = self.requested.back().map_or(epoch + 1, |e| e + 1);
        while next <= epoch + self.depth {
            if self.requests.send(next).is_err() {
                break;
            }
            self.requested.push_back(next);
            next += 1;
        }
        perm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetched_permutations_are_the_epochs_own() {
        let order = BatchOrder::new(1000, 100, 7).unwrap();
        let mut p = PermutationPrefetch::new(order.clone(), 3);
        // In order, with a skip ahead, a jump back, and a repeat.
        for epoch in [0, 1, 2, 3, 6, 7, 2, 3, 3, 4] {
            assert_eq!(p.take(epoch), order.permutation(epoch), "epoch {epoch}");
        }
        assert_eq!(
            p.requested.iter().copied().collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
    }

    #[test]
    fn huge_epochs_are_not_shuffled_ahead() {
        let small = PermutationPrefetch::new(BatchOrder::new(1000, 100, 7).unwrap(), 3);
        assert_eq!(small.depth, 3);
        let huge = BatchOrder::new(100_000_000, 256, 7).unwrap();
        assert_eq!(PermutationPrefetch::new(huge, 1).depth, 0);
    }

    /// Taken from inside a one-thread rayon pool: a rayon task waiting on
    /// a rayon job queued behind it would never finish.
    #[test]
    fn taking_from_a_busy_rayon_pool_cannot_deadlock() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let order = BatchOrder::new(500, 50, 1).unwrap();
        let same = pool.install(|| {
            let mut p = PermutationPrefetch::new(order.clone(), 4);
            (0..12).all(|e| p.take(e) == order.permutation(e))
        });
        assert!(same);
    }
}
