//! A budget of bytes in flight. Each large request body (photos) takes a share of it for
//! its size before it is read and gives it back once its task is queued, so the memory
//! that bodies being read, parsed and sealed take at once stays bounded however many
//! clients send at the same time. Rate limits bound requests per caller over time; this
//! bounds them across callers at one instant.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Permits are counted in KiB, so any budget fits a semaphore's `u32` acquisitions.
const UNIT_BYTES: usize = 1024;

#[derive(Debug)]
pub struct InflightBytes {
    permits: Arc<Semaphore>,
    capacity: u32,
}

/// A share of the budget; given back when dropped.
#[derive(Debug)]
pub struct InflightPermit {
    _permits: OwnedSemaphorePermit,
}

impl InflightBytes {
    pub fn new(capacity_bytes: usize) -> Self {
        let capacity = u32::try_from(capacity_bytes.div_ceil(UNIT_BYTES)).unwrap_or(u32::MAX).max(1);
        Self { permits: Arc::new(Semaphore::new(capacity as usize)), capacity }
    }

    /// Waits up to `patience` for `bytes` of the budget (at most the whole budget, so any
    /// body can pass when nothing else is in flight); `None` when it stayed too full.
    pub async fn acquire(&self, bytes: usize, patience: Duration) -> Option<InflightPermit> {
        let units = u32::try_from(bytes.div_ceil(UNIT_BYTES)).unwrap_or(u32::MAX).clamp(1, self.capacity);
        let acquired = tokio::time::timeout(patience, self.permits.clone().acquire_many_owned(units)).await;
        match acquired {
            Ok(Ok(permits)) => Some(InflightPermit { _permits: permits }),
            // Timed out, or closed (never: the semaphore is not closed).
            _ => None,
        }
    }

    /// Bytes of the budget not taken at the moment.
    pub fn available_bytes(&self) -> usize {
        self.permits.available_permits() * UNIT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[tokio::test]
    async fn bodies_past_the_budget_wait_and_get_in_once_it_is_given_back() {
        let budget = InflightBytes::new(4 * MIB);
        let first = budget.acquire(3 * MIB, Duration::ZERO).await.expect("fits");
        assert!(budget.acquire(2 * MIB, Duration::from_millis(20)).await.is_none(), "over the budget");
        let small = budget.acquire(MIB, Duration::ZERO).await.expect("the rest fits");
        assert_eq!(budget.available_bytes(), 0);
        drop((first, small));
        assert_eq!(budget.available_bytes(), 4 * MIB);
        assert!(budget.acquire(100 * MIB, Duration::ZERO).await.is_some(), "larger than the budget: all of it");
    }

    #[tokio::test]
    async fn a_waiting_body_gets_in_when_another_finishes_within_its_patience() {
        let budget = Arc::new(InflightBytes::new(MIB));
        let held = budget.acquire(MIB, Duration::ZERO).await.unwrap();
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire(MIB, Duration::from_secs(5)).await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        assert!(waiter.await.unwrap());
    }
}
