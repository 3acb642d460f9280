extension JobStore {
    /// The schema, in steps; `PRAGMA user_version` records how many have run, so an existing
    /// database is brought up to date in place when a new Backend starts on it.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE IF NOT EXISTS users (
                id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE COLLATE NOCASE,
                password_hash TEXT NOT NULL, created_at REAL NOT NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS tokens (
                hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                expires_at REAL NOT NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS jobs (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                owner_id TEXT NOT NULL REFERENCES users(id), project TEXT NOT NULL, status TEXT NOT NULL,
                exit_code INTEGER, reason TEXT, submitted_at REAL NOT NULL, started_at REAL, finished_at REAL,
                result_bytes INTEGER, time_limit INTEGER NOT NULL, memory_limit INTEGER NOT NULL)
            """,
            "CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner_id, seq)",
            "CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status)",
        ],
        [
            // Administrators and disabled accounts; browser sessions with their CSRF tokens.
            "ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0",
            "UPDATE users SET is_admin = 1 WHERE rowid = (SELECT MIN(rowid) FROM users)",
            """
            CREATE TABLE sessions (
                hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                csrf TEXT NOT NULL, expires_at REAL NOT NULL)
            """,
            // Which unit reported a job last, and when its status last changed; every change is
            // recorded in job_history by triggers, in the same statement that makes it.
            "ALTER TABLE jobs ADD COLUMN unit TEXT",
            "ALTER TABLE jobs ADD COLUMN status_at REAL",
            "UPDATE jobs SET status_at = COALESCE(finished_at, started_at, submitted_at)",
            """
            CREATE TABLE job_history (
                job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, status TEXT NOT NULL, at REAL NOT NULL, reason TEXT)
            """,
            "CREATE INDEX job_history_job ON job_history(job_id)",
            """
            CREATE TRIGGER jobs_history_insert AFTER INSERT ON jobs BEGIN
                INSERT INTO job_history (job_id, status, at) VALUES (NEW.id, NEW.status, NEW.submitted_at);
            END
            """,
            """
            CREATE TRIGGER jobs_history_update AFTER UPDATE OF status ON jobs WHEN NEW.status <> OLD.status BEGIN
                INSERT INTO job_history (job_id, status, at, reason) VALUES (NEW.id, NEW.status, NEW.status_at, NEW.reason);
            END
            """,
            // The results page filters by status and by project; both stay index scans.
            "CREATE INDEX jobs_owner_status ON jobs(owner_id, status, seq)",
            "CREATE INDEX jobs_owner_project ON jobs(owner_id, project, seq)",
            "CREATE TABLE units (name TEXT PRIMARY KEY, last_seen REAL NOT NULL)",
        ],
        [
            // A unit's last report is kept by a trigger, inside the transaction of the status change
            // it reported, instead of a statement (and an fsync) of its own for every event.
            """
            CREATE TRIGGER jobs_unit_seen AFTER UPDATE OF status ON jobs WHEN NEW.unit IS NOT NULL BEGIN
                INSERT OR REPLACE INTO units (name, last_seen) VALUES (
                    NEW.unit, MAX(NEW.status_at, COALESCE((SELECT last_seen FROM units WHERE name = NEW.unit), 0)));
            END
            """,
        ],
        [
            // The first administrator comes from the operator's one-time setup token, no longer from
            // being first to register; invite links for closed sign-up; the bytes of each bundle, for
            // the per-user storage limit.
            "CREATE TABLE setup (id INTEGER PRIMARY KEY CHECK (id = 1), token_hash TEXT NOT NULL, created_at REAL NOT NULL)",
            """
            CREATE TABLE invites (
                hash TEXT PRIMARY KEY, created_by TEXT REFERENCES users(id) ON DELETE SET NULL, created_at REAL NOT NULL,
                expires_at REAL NOT NULL, used_by TEXT REFERENCES users(id) ON DELETE SET NULL, used_at REAL)
            """,
            "ALTER TABLE jobs ADD COLUMN bundle_bytes INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX jobs_owner_submitted ON jobs(owner_id, submitted_at)",
        ],
        [
            // Retention: when a finished job's files (bundle, logs, result) were removed.
            "ALTER TABLE jobs ADD COLUMN files_removed_at REAL",
            "CREATE INDEX jobs_finished ON jobs(finished_at)",
        ],
        [
            // Consumers may report their unit by the address the Backend asks it through (compose:
            // the Consumer's `/unit`, consumer.url). Names from before are forgotten, so the admin
            // page does not list them as down for ever; each unit is known again by its next report
            // (one running a job is listed with it until then).
            "DELETE FROM units",
        ],
        [
            // Sweeps: one bundle run once per parameter set. Each run is a job that knows its sweep,
            // its place in it and its parameters (JSON); a run held back by the sweep's throttle stays
            // `submitted` with `held` set until a running one ends, and the outbox leaves it alone.
            """
            CREATE TABLE sweeps (
                id TEXT PRIMARY KEY, owner_id TEXT NOT NULL REFERENCES users(id), project TEXT NOT NULL,
                created_at REAL NOT NULL, throttle INTEGER NOT NULL, names TEXT NOT NULL, source TEXT NOT NULL, runs INTEGER NOT NULL)
            """,
            "CREATE INDEX sweeps_owner ON sweeps(owner_id, created_at)",
            "ALTER TABLE jobs ADD COLUMN sweep_id TEXT REFERENCES sweeps(id)",
            "ALTER TABLE jobs ADD COLUMN sweep_index INTEGER",
            "ALTER TABLE jobs ADD COLUMN params TEXT",
            "ALTER TABLE jobs ADD COLUMN held INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX jobs_sweep ON jobs(sweep_id, sweep_index)",
            "CREATE INDEX jobs_held ON jobs(held) WHERE held = 1",
        ],
    ]
}
