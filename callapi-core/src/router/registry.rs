//! The devices of each user and the connection each one has now, if any.

use std::collections::HashMap;

use crate::protocol::{DeviceId, UserId};

use super::DeviceMemory;

/// A device's live connection: the caller's handle and the access-link room it is limited to.
#[derive(Debug)]
pub(crate) struct Link<C> {
    pub(crate) handle: C,
    pub(crate) scope: Option<String>,
}

/// One device of a user.
#[derive(Debug)]
pub(crate) struct Device<C> {
    pub(crate) id: DeviceId,
    pub(crate) link: Option<Link<C>>,
}

/// Who is known, on which devices, and which of them are connected.
#[derive(Debug)]
pub(crate) struct Registry<C> {
    memory: DeviceMemory,
    users: HashMap<UserId, Vec<Device<C>>>,
    /// Devices with a connection.
    connected: usize,
    /// Users with at least one connected device.
    connected_users: usize,
}

/// What [`Registry::connect`] changed.
pub(crate) struct Attached<C> {
    pub(crate) replaced: Option<C>,
    pub(crate) first: bool,
}

impl<C> Registry<C> {
    pub(crate) fn new(memory: DeviceMemory) -> Self {
        Self {
            memory,
            users: HashMap::new(),
            connected: 0,
            connected_users: 0,
        }
    }

    pub(crate) fn devices(&self, user: &UserId) -> &[Device<C>] {
        self.users.get(user).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn device(&self, user: &UserId, device: &DeviceId) -> Option<&Device<C>> {
        self.devices(user).iter().find(|d| &d.id == device)
    }

    pub(crate) fn connected_devices(&self, user: &UserId) -> usize {
        self.devices(user)
            .iter()
            .filter(|d| d.link.is_some())
            .count()
    }

    pub(crate) fn connected(&self) -> usize {
        self.connected
    }

    pub(crate) fn connected_users(&self) -> usize {
        self.connected_users
    }

    /// Makes a device known without a connection. Returns whether it was new.
    pub(crate) fn register(&mut self, user: &UserId, device: &DeviceId) -> bool {
        let devices = self.users.entry(user.clone()).or_default();
        if devices.iter().any(|d| &d.id == device) {
            return false;
        }
        devices.push(Device {
            id: device.clone(),
            link: None,
        });
        true
    }

    /// Gives a device its connection (registering it if needed), replacing any it had.
    pub(crate) fn connect(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        handle: C,
        scope: Option<String>,
    ) -> Attached<C> {
        // Most users have one device: room for one, so an idle user costs one slot.
        let devices = self
            .users
            .entry(user.clone())
            .or_insert_with(|| Vec::with_capacity(1));
        let first = !devices.iter().any(|d| d.link.is_some());
        let link = Some(Link { handle, scope });
        let replaced = match devices.iter_mut().find(|d| &d.id == device) {
            Some(d) => std::mem::replace(&mut d.link, link).map(|l| l.handle),
            None => {
                devices.push(Device {
                    id: device.clone(),
                    link,
                });
                None
            }
        };
        if replaced.is_none() {
            self.connected += 1;
        }
        if first {
            self.connected_users += 1;
        }
        Attached { replaced, first }
    }

    /// Takes the connection of the device matched by `which`, if it has one. Returns the
    /// handle and whether the user has no connected device left.
    pub(crate) fn disconnect(
        &mut self,
        user: &UserId,
        which: impl Fn(&Device<C>) -> bool,
    ) -> Option<(C, bool)> {
        let devices = self.users.get_mut(user)?;
        let pos = devices.iter().position(|d| d.link.is_some() && which(d))?;
        let link = match self.memory {
            DeviceMemory::Registered => devices.get_mut(pos)?.link.take(),
            DeviceMemory::WhileConnected => devices.swap_remove(pos).link,
        }?;
        self.connected -= 1;
        let last = !devices.iter().any(|d| d.link.is_some());
        if last {
            self.connected_users -= 1;
        }
        if devices.is_empty() {
            self.users.remove(user);
        }
        Some((link.handle, last))
    }
}
