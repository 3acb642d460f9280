import Foundation

/// Slows down guessing: after `freeAttempts` failed logins for one key within `window`, each further
/// attempt must wait twice as long as the one before, up to `maxDelay`. The Backend keeps one for
/// accounts (a few attempts) and one for client addresses (more, since a lab behind one NAT address
/// shares it), so neither many accounts from one address nor one account from many addresses is fast.
/// Kept in memory: a restart forgives, which costs a guesser a restart of someone else's server.
actor LoginThrottle {
    private struct Record {
        var failures = 0
        var last = Date.distantPast
        var blockedUntil = Date.distantPast
    }

    let freeAttempts: Int
    let window: TimeInterval
    let maxDelay: TimeInterval
    /// The first wait; each one after doubles it.
    let firstDelay: TimeInterval
    private var records: [String: Record] = [:]

    init(freeAttempts: Int = 5, window: TimeInterval = 15 * 60, maxDelay: TimeInterval = 300, firstDelay: TimeInterval = 1) {
        self.freeAttempts = freeAttempts
        self.window = window
        self.maxDelay = maxDelay
        self.firstDelay = firstDelay
    }

    /// Seconds to wait before another attempt for any of `keys`, or nil when one may be made now.
    func delay(for keys: [String], now: Date = Date()) -> Int? {
        let until = keys.compactMap { records[$0]?.blockedUntil }.max() ?? .distantPast
        return until > now ? Int(until.timeIntervalSince(now).rounded(.up)) : nil
    }

    func failed(_ keys: [String], now: Date = Date()) {
        if records.count > 100_000 { records = records.filter { now.timeIntervalSince($0.value.last) < window } }
        for key in keys {
            var record = records[key] ?? Record()
            if now.timeIntervalSince(record.last) > window { record = Record() }
            record.failures += 1
            record.last = now
            if record.failures >= freeAttempts {
                record.blockedUntil = now.addingTimeInterval(min(firstDelay * pow(2, Double(record.failures - freeAttempts)), maxDelay))
            }
            records[key] = record
        }
    }

    func succeeded(_ key: String) {
        records[key] = nil
    }
}
