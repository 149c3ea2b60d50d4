//! Access-link scopes: the calls whose invite (in some room) went through the router, so that
//! a connection limited to one room sends and receives only envelopes of that room's calls.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::protocol::CallId;

#[derive(Debug)]
struct TrackedCall {
    room: String,
    last_used: Instant,
}

/// Call id → room, bounded in count (the call unused for longest goes first) and in idle time.
#[derive(Debug)]
pub(crate) struct CallScopes {
    calls: HashMap<CallId, TrackedCall>,
    max: usize,
    idle: Duration,
}

impl CallScopes {
    pub(crate) fn new(max: usize, idle: Duration) -> Self {
        Self {
            calls: HashMap::new(),
            max,
            idle,
        }
    }

    /// The room of a tracked call.
    pub(crate) fn room(&self, call_id: &CallId) -> Option<&str> {
        self.calls.get(call_id).map(|c| c.room.as_str())
    }

    /// Marks a tracked call as used now; returns its room.
    pub(crate) fn touch(&mut self, call_id: &CallId, now: Instant) -> Option<&str> {
        let call = self.calls.get_mut(call_id)?;
        call.last_used = now;
        Some(call.room.as_str())
    }

    /// Tracks a call in `room` (or marks it used if it is tracked already).
    pub(crate) fn track(&mut self, call_id: CallId, room: &str, now: Instant) {
        if let Some(call) = self.calls.get_mut(&call_id) {
            call.last_used = now;
            return;
        }
        if self.calls.len() >= self.max {
            // Full: forget the call unused for longest.
            if let Some(oldest) = self
                .calls
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(id, _)| *id)
            {
                self.calls.remove(&oldest);
            }
        }
        self.calls.insert(
            call_id,
            TrackedCall {
                room: room.to_owned(),
                last_used: now,
            },
        );
    }

    /// Forgets calls unused for the idle time.
    pub(crate) fn sweep(&mut self, now: Instant) {
        let idle = self.idle;
        self.calls
            .retain(|_, c| now.saturating_duration_since(c.last_used) < idle);
    }
}
