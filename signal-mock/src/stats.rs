//! Counters kept by [`SimNetwork`](crate::SimNetwork) and [`MockNetwork`](crate::MockNetwork).

/// What a mock network did with the envelopes it was given.
///
/// `sent` counts envelopes handed to the network; every other counter counts per-device copies.
/// Every copy ends up exactly once in `delivered`, `dropped` or `expired_offline`, is still in
/// flight, or is still stored; `duplicated` counts the extra copies the fault plan created and
/// `stored_offline` how many times a copy was put into the offline store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetworkStats {
    /// Envelopes handed to the network.
    pub sent: u64,
    /// Copies handed to a device.
    pub delivered: u64,
    /// Copies lost, for any reason (the counters below break some of them down).
    pub dropped: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Copies kept for a device that was offline.
    pub stored_offline: u64,
    /// Stored copies discarded because their lifetime ended before the device came online.
    pub expired_offline: u64,
    /// Envelopes dropped because of a partition (also counted in `dropped`).
    pub partitioned: u64,
    /// Envelopes dropped because no such user or device is registered (also in `dropped`).
    pub unknown_recipient: u64,
    /// Envelopes dropped because the sending device was offline (also in `dropped`; only
    /// [`SimNetwork`](crate::SimNetwork) counts these, [`MockSignalClient`](crate::MockSignalClient)
    /// refuses such sends with `SignalError::NotConnected` instead).
    pub sender_offline: u64,
}
