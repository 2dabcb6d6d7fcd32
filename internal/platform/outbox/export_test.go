package outbox

// RelayLockKey is the advisory lock of a relay batch, for tests that hold
// it as another replica's relay would.
const RelayLockKey = relayLockKey
