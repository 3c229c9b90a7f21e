//! Mutable per-connection state: one value per type, created on first use
//! ([`Connection::with_state`]). The handshake's [`Accept::data`](crate::Accept::data)
//! stays the read-only part.

use std::any::{Any, TypeId};

use parking_lot::Mutex;

use crate::Connection;

/// A connection's state values, at most one per type.
#[derive(Default)]
pub(crate) struct States(Mutex<Vec<(TypeId, Box<dyn Any + Send>)>>);

/// First state values, from the handshake ([`Accept::state`](crate::Accept::state)).
#[derive(Default)]
pub(crate) struct Seeds(Vec<(TypeId, Box<dyn Any + Send>)>);

impl Seeds {
    /// Sets the value of type `T`, replacing an earlier one.
    pub(crate) fn set<T: Send + 'static>(&mut self, value: T) {
        self.0.retain(|(t, _)| *t != TypeId::of::<T>());
        self.0.push((TypeId::of::<T>(), Box::new(value)));
    }

    /// How many values there are.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl States {
    /// Starts with these values (before the connection's hooks run).
    pub(crate) fn seed(&self, seeds: Seeds) {
        let mut values = self.0.lock();
        for (t, v) in seeds.0 {
            values.retain(|(u, _)| *u != t);
            values.push((t, v));
        }
    }
}

impl Connection {
    /// Runs `f` on this connection's value of type `T`, created with
    /// `T::default()` on first use, and returns what `f` returns. Each type
    /// has its own value, so there is no type to get wrong: a filter the
    /// client can change, a counter, a name.
    ///
    /// ```
    /// use wsportal::{Message, Resource};
    /// #[derive(Default)]
    /// struct Filter(String);
    /// let logs = Resource::new().on_message(|ws, msg: Message| {
    ///     // Every text message sets the client's filter.
    ///     let text = msg.as_text().unwrap_or("").to_owned();
    ///     ws.with_state(|f: &mut Filter| f.0 = text);
    /// });
    /// // ... and a push keeps the clients whose filter matches:
    /// // push.to_resource_where("/logs", |ws| ws.with_state(|f: &mut Filter| line.contains(&f.0)), line)
    /// # let _ = logs;
    /// ```
    ///
    /// The values live as long as the connection's handles. `f` runs under
    /// this connection's state lock: calling `with_state` on the same
    /// connection from inside `f` deadlocks; other connections are fine.
    pub fn with_state<T: Default + Send + 'static, R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut values = self.inner.states.0.lock();
        let i = match values.iter().position(|(t, _)| *t == TypeId::of::<T>()) {
            Some(i) => i,
            None => {
                values.push((TypeId::of::<T>(), Box::new(T::default())));
                values.len() - 1
            }
        };
        // Because the value at `i` was stored under `TypeId::of::<T>()`, it is a `T`.
        let value = values[i]
            .1
            .downcast_mut::<T>()
            .expect("a value of its type id");
        f(value)
    }

    /// Sets this connection's value of type `T` (see [`Connection::with_state`]).
    pub fn set_state<T: Default + Send + 'static>(&self, value: T) {
        self.with_state(|v: &mut T| *v = value);
    }
}
