import CSQLite

/// `SQLITE_TRANSIENT`: SQLite copies bound buffers before the bind call returns.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection. Not thread-safe: each owner serialises its own use.
final class SQLiteDatabase {
    private(set) var handle: OpaquePointer?
    private let path: String
    private var statements: [String: SQLiteStatement] = [:]

    init(path: String, busyTimeoutMs: Int, synchronousFull: Bool) throws {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw EventLogError(.storage, "cannot open \(path): \(message)")
        }
        handle = db
        self.path = path
        sqlite3_busy_timeout(db, Int32(busyTimeoutMs))
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=\(synchronousFull ? "FULL" : "NORMAL")")
        try execute("PRAGMA foreign_keys=OFF")
    }

    deinit { close() }

    func close() {
        statements.values.forEach { $0.finalize() }
        statements.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    var errorMessage: String {
        handle.map { String(cString: sqlite3_errmsg($0)) } ?? "database closed"
    }

    /// The error for the last failed call: `.diskFull` when SQLite ran out of space (its
    /// transaction is rolled back, so nothing half-written remains), `.storage` otherwise.
    func lastError(_ context: String? = nil) -> EventLogError {
        let detail = context.map { "\(errorMessage) in: \($0)" } ?? errorMessage
        if let handle, sqlite3_errcode(handle) == SQLITE_FULL {
            return EventLogError(.diskFull, "the disk holding \(path) is full (\(detail)); free space and start again")
        }
        return EventLogError(.storage, detail)
    }

    func execute(_ sql: String) throws {
        guard let handle else { throw EventLogError(.closed, "database closed") }
        var error: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(handle, sql, nil, nil, &error) != SQLITE_OK {
            sqlite3_free(error)
            throw lastError(sql)
        }
    }

    /// A cached prepared statement, reset and with its bindings cleared.
    func statement(_ sql: String) throws -> SQLiteStatement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        guard let handle else { throw EventLogError(.closed, "database closed") }
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else {
            throw lastError(sql)
        }
        let statement = SQLiteStatement(stmt, database: self)
        statements[sql] = statement
        return statement
    }

    /// Runs `body` in an IMMEDIATE transaction (takes the write lock up front), rolling back on error.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        resetAll()
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            resetAll()
            try execute("COMMIT")
            return result
        } catch {
            resetAll()
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Runs reads outside a transaction, then resets every statement so no read snapshot
    /// stays open (an open snapshot would make a later BEGIN IMMEDIATE fail with SQLITE_BUSY).
    func read<T>(_ body: () throws -> T) throws -> T {
        defer { resetAll() }
        return try body()
    }

    private func resetAll() {
        for statement in statements.values { statement.reset() }
    }

    var changes: Int { handle.map { Int(sqlite3_changes($0)) } ?? 0 }
}

/// A prepared statement with 1-based binds and 0-based columns.
final class SQLiteStatement {
    private var stmt: OpaquePointer?
    private unowned let database: SQLiteDatabase

    init(_ stmt: OpaquePointer, database: SQLiteDatabase) {
        self.stmt = stmt
        self.database = database
    }

    func finalize() {
        sqlite3_finalize(stmt)
        stmt = nil
    }

    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    @discardableResult
    func bind(_ index: Int32, _ value: Int64) -> Self {
        sqlite3_bind_int64(stmt, index, value)
        return self
    }

    @discardableResult
    func bind(_ index: Int32, _ value: Int) -> Self { bind(index, Int64(value)) }

    @discardableResult
    func bind(_ index: Int32, _ value: String) -> Self {
        sqlite3_bind_text(stmt, index, value, -1, transient)
        return self
    }

    @discardableResult
    func bind(_ index: Int32, _ value: [UInt8]?) -> Self {
        guard let value else {
            sqlite3_bind_null(stmt, index)
            return self
        }
        _ = value.withUnsafeBytes { raw in
            // A zero-length blob still needs a non-null pointer to stay distinct from NULL.
            if raw.count == 0 {
                sqlite3_bind_zeroblob(stmt, index, 0)
            } else {
                sqlite3_bind_blob(stmt, index, raw.baseAddress, Int32(raw.count), transient)
            }
        }
        return self
    }

    /// Steps once; true while a row is available.
    func step() throws -> Bool {
        switch sqlite3_step(stmt) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw database.lastError()
        }
    }

    func run() throws {
        while try step() {}
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }
    func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(stmt, column)) }
    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }

    func text(_ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(stmt, column) else { return "" }
        return String(cString: bytes)
    }

    func blob(_ column: Int32) -> [UInt8]? {
        if isNull(column) { return nil }
        let count = Int(sqlite3_column_bytes(stmt, column))
        guard count > 0, let base = sqlite3_column_blob(stmt, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: base, count: count))
    }
}
