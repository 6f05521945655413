"""The one read timeout the tests give the service's gateway client.

It is long enough that a loaded CI runner's scheduling stall (a 0.5 s read timeout once failed a plain
sale on one) never turns an answered request into an unknown one. Tests that need the timeout to fire
use the fakes' `slow` fault, which holds its answer until the client gives up, so they never race two
clocks and cost exactly this long."""

from __future__ import annotations

CLIENT_READ_SECONDS = 2.0
CLIENT_CONNECT_SECONDS = 1.0
