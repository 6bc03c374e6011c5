//! Epoch permutations computed ahead on rayon's pool while the GPU works.
//!
//! Shuffling a million-row epoch takes ~12 ms on the host. Computed when a
//! submission needs it, that time is GPU idle time at the start of every
//! `run` (the queue is empty after the previous `take_loss`); computed
//! ahead, it overlaps the GPU's work on earlier epochs.

use std::collections::VecDeque;
use std::sync::mpsc;

use crate::train::BatchOrder;

pub struct PermutationPrefetch {
    order: BatchOrder,
    /// How many epochs after the one taken are requested.
    depth: usize,
    /// Requested epochs, consecutive and ascending.
    pending: VecDeque<(usize, mpsc::Receiver<Vec<u32>>)>,
}

impl PermutationPrefetch {
    pub fn new(order: BatchOrder, depth: usize) -> Self {
        PermutationPrefetch {
            order,
            depth,
            pending: VecDeque::new(),
        }
    }

    /// `order.permutation(epoch)`, waiting for it if it is being computed
    /// and computing it here if it was never requested; then requests the
    /// `depth` epochs after it.
    pub fn take(&mut self, epoch: usize) -> Vec<u32> {
        while self.pending.front().is_some_and(|(e, _)| *e < epoch) {
            self.pending.pop_front();
        }
        let ready = match self.pending.front() {
            Some((e, _)) if *e == epoch => {
                self.pending.pop_front().and_then(|(_, rx)| rx.recv().ok())
            }
            _ => {
                self.pending.clear();
                None
            }
        };
        let perm = ready.unwrap_or_else(|| self.order.permutation(epoch));
        let mut next = self.pending.back().map_or(epoch + 1, |(e, _)| e + 1);
        while next <= epoch + self.depth {
            let (tx, rx) = mpsc::channel();
            let order = self.order.clone();
            rayon::spawn(move || {
                // The receiver is gone if the trainer was dropped meanwhile.
                let _ = tx.send(order.permutation(next));
            });
            self.pending.push_back((next, rx));
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
        // In order, with a skip ahead and a jump back.
        for epoch in [0, 1, 2, 3, 6, 7, 2, 3] {
            assert_eq!(p.take(epoch), order.permutation(epoch), "epoch {epoch}");
        }
        assert_eq!(
            p.pending.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
    }
}
