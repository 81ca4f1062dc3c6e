import Foundation

/// Consumer groups of the embedded log. Members of one group may live in several processes:
/// each heartbeats into `members`; any membership change bumps the group's generation and
/// recomputes `assignments` (the target). A member fetches a partition only after claiming it
/// in `owners`, and a member losing a partition releases it only after its revoke handler ran,
/// so two members never read the same partition at once.
extension EmbeddedStore {
    /// Adds or refreshes a member and rebalances. Returns the new generation.
    func joinGroup(_ group: String, member: String, topics: [String], strategy: AssignmentStrategy, sessionMs: Int64) throws -> Int64 {
        let topicsJSON = String(decoding: try JSONEncoder.sorted.encode(topics.sorted()), as: UTF8.self)
        return try db.transaction {
            try db.statement("""
                INSERT INTO members(group_id, member_id, topics, strategy, heartbeat_ms, session_ms) VALUES(?,?,?,?,?,?)
                ON CONFLICT(group_id, member_id) DO UPDATE SET topics = excluded.topics, strategy = excluded.strategy,
                heartbeat_ms = excluded.heartbeat_ms, session_ms = excluded.session_ms
                """).bind(1, group).bind(2, member).bind(3, topicsJSON).bind(4, strategy.rawValue)
                .bind(5, currentTimestampMs()).bind(6, sessionMs).run()
            _ = try expireMembers(group, now: currentTimestampMs())
            return try rebalance(group)
        }
    }

    /// Records a heartbeat and expires silent members. Returns the current generation, or nil
    /// if this member was expired (it must rejoin).
    func heartbeat(_ group: String, member: String) throws -> Int64? {
        try db.transaction {
            let now = currentTimestampMs()
            try db.statement("UPDATE members SET heartbeat_ms = ? WHERE group_id = ? AND member_id = ?")
                .bind(1, now).bind(2, group).bind(3, member).run()
            if db.changes == 0 { return nil }
            if try expireMembers(group, now: now) { return try rebalance(group) }
            return try generation(group)
        }
    }

    /// Removes a member (after it released its partitions) and rebalances the rest.
    func leaveGroup(_ group: String, member: String) throws {
        try db.transaction {
            try db.statement("DELETE FROM owners WHERE group_id = ? AND member_id = ?").bind(1, group).bind(2, member).run()
            try db.statement("DELETE FROM members WHERE group_id = ? AND member_id = ?").bind(1, group).bind(2, member).run()
            if db.changes > 0 { _ = try rebalance(group) }
        }
    }

    func generation(_ group: String) throws -> Int64 {
        let q = try db.statement("SELECT generation FROM groups WHERE group_id = ?").bind(1, group)
        return try q.step() ? q.int64(0) : 0
    }

    /// The partitions the current generation assigns to `member`.
    func targetAssignment(_ group: String, member: String) throws -> Set<TopicPartition> {
        try db.read {
            let q = try db.statement("SELECT topic, partition FROM assignments WHERE group_id = ? AND member_id = ?")
                .bind(1, group).bind(2, member)
            var result: Set<TopicPartition> = []
            while try q.step() { result.insert(TopicPartition(q.text(0), q.int(1))) }
            return result
        }
    }

    /// Takes ownership of those partitions no live member holds; returns the ones now owned.
    func claim(_ group: String, member: String, _ partitions: Set<TopicPartition>) throws -> Set<TopicPartition> {
        try db.transaction {
            try db.statement("""
                DELETE FROM owners WHERE group_id = ?1 AND member_id NOT IN (SELECT member_id FROM members WHERE group_id = ?1)
                """).bind(1, group).run()
            var claimed: Set<TopicPartition> = []
            for tp in partitions.sorted() {
                try db.statement("INSERT OR IGNORE INTO owners(group_id, topic, partition, member_id) VALUES(?,?,?,?)")
                    .bind(1, group).bind(2, tp.topic).bind(3, tp.partition).bind(4, member).run()
                let q = try db.statement("SELECT member_id FROM owners WHERE group_id = ? AND topic = ? AND partition = ?")
                    .bind(1, group).bind(2, tp.topic).bind(3, tp.partition)
                if try q.step(), q.text(0) == member { claimed.insert(tp) }
            }
            return claimed
        }
    }

    func release(_ group: String, member: String, _ partitions: Set<TopicPartition>) throws {
        try db.transaction {
            for tp in partitions {
                try db.statement("DELETE FROM owners WHERE group_id = ? AND topic = ? AND partition = ? AND member_id = ?")
                    .bind(1, group).bind(2, tp.topic).bind(3, tp.partition).bind(4, member).run()
            }
        }
    }

    /// Stores committed offsets. With `member` (a subscribed consumer) each partition must be
    /// owned by that live member — a member whose session expired or that lost the partition in
    /// a rebalance is fenced off, as Kafka refuses commits from a stale generation.
    func commitOffsets(_ group: String, _ offsets: [TopicPartition: Int64], member: String? = nil) throws {
        let now = currentTimestampMs()
        try db.transaction {
            for (tp, offset) in offsets {
                _ = try partitionID(tp)
                guard offset >= 0 else { throw EventLogError(.invalidArgument, "cannot commit negative offset \(offset) for \(tp)") }
                if let member {
                    let q = try db.statement("""
                        SELECT 1 FROM owners o JOIN members m ON m.group_id = o.group_id AND m.member_id = o.member_id
                        WHERE o.group_id = ? AND o.topic = ? AND o.partition = ? AND o.member_id = ?
                        """).bind(1, group).bind(2, tp.topic).bind(3, tp.partition).bind(4, member)
                    guard try q.step() else {
                        throw EventLogError(.notAssigned, "commit for \(tp) refused: this member no longer owns it in group \(group) (session expired or rebalanced)")
                    }
                }
                try db.statement("""
                    INSERT INTO offsets(group_id, topic, partition, next_offset, committed_ms) VALUES(?,?,?,?,?)
                    ON CONFLICT(group_id, topic, partition) DO UPDATE SET next_offset = excluded.next_offset,
                    committed_ms = excluded.committed_ms
                    """).bind(1, group).bind(2, tp.topic).bind(3, tp.partition).bind(4, offset).bind(5, now).run()
            }
        }
    }

    func committedOffsets(_ group: String, _ partitions: [TopicPartition]) throws -> [TopicPartition: Int64] {
        try db.read {
            var result: [TopicPartition: Int64] = [:]
            for tp in partitions {
                let q = try db.statement("SELECT next_offset FROM offsets WHERE group_id = ? AND topic = ? AND partition = ?")
                    .bind(1, group).bind(2, tp.topic).bind(3, tp.partition)
                if try q.step() { result[tp] = q.int64(0) }
            }
            return result
        }
    }

    /// Deletes members whose session ran out, with their ownerships. True if any went.
    private func expireMembers(_ group: String, now: Int64) throws -> Bool {
        try db.statement("DELETE FROM members WHERE group_id = ? AND heartbeat_ms + session_ms < ?").bind(1, group).bind(2, now).run()
        guard db.changes > 0 else { return false }
        try db.statement("""
            DELETE FROM owners WHERE group_id = ?1 AND member_id NOT IN (SELECT member_id FROM members WHERE group_id = ?1)
            """).bind(1, group).run()
        return true
    }

    /// Recomputes the target assignment from the live members; bumps the generation.
    private func rebalance(_ group: String) throws -> Int64 {
        let q = try db.statement("SELECT member_id, topics, strategy FROM members WHERE group_id = ? ORDER BY member_id").bind(1, group)
        var members: [(id: String, topics: Set<String>)] = []
        var strategy = AssignmentStrategy.range
        while try q.step() {
            let topics = (try? JSONDecoder().decode([String].self, from: Data(q.text(1).utf8))) ?? []
            if members.isEmpty { strategy = AssignmentStrategy(rawValue: q.text(2)) ?? .range }
            members.append((q.text(0), Set(topics)))
        }
        var partitionCounts: [String: Int] = [:]
        for name in Set(members.flatMap(\.topics)) {
            if let topic = try topic(name) { partitionCounts[name] = topic.partitionIDs.count }
        }
        let plan = GroupAssignor.assign(strategy: strategy, members: members.map { ($0.id, $0.topics) }, partitions: partitionCounts)
        try db.statement("DELETE FROM assignments WHERE group_id = ?").bind(1, group).run()
        for (member, tps) in plan {
            for tp in tps {
                try db.statement("INSERT INTO assignments(group_id, topic, partition, member_id) VALUES(?,?,?,?)")
                    .bind(1, group).bind(2, tp.topic).bind(3, tp.partition).bind(4, member).run()
            }
        }
        try db.statement("""
            INSERT INTO groups(group_id, generation) VALUES(?, 1)
            ON CONFLICT(group_id) DO UPDATE SET generation = generation + 1
            """).bind(1, group).run()
        return try generation(group)
    }
}

/// Kafka's `range` and `roundrobin` assignors over members sorted by id.
public enum GroupAssignor {
    public static func assign(strategy: AssignmentStrategy, members: [(id: String, topics: Set<String>)],
                              partitions: [String: Int]) -> [String: [TopicPartition]] {
        let members = members.sorted { $0.id < $1.id }
        var plan: [String: [TopicPartition]] = [:]
        for member in members { plan[member.id] = [] }
        switch strategy {
        case .range:
            for topic in partitions.keys.sorted() {
                let subscribers = members.filter { $0.topics.contains(topic) }.map(\.id)
                guard !subscribers.isEmpty, let count = partitions[topic] else { continue }
                let each = count / subscribers.count, extra = count % subscribers.count
                var next = 0
                for (i, member) in subscribers.enumerated() {
                    let n = each + (i < extra ? 1 : 0)
                    plan[member, default: []] += (next..<next + n).map { TopicPartition(topic, $0) }
                    next += n
                }
            }
        case .roundRobin:
            let all = partitions.keys.sorted().flatMap { topic in (0..<partitions[topic]!).map { TopicPartition(topic, $0) } }
            var turn = 0
            for tp in all {
                let subscribers = members.filter { $0.topics.contains(tp.topic) }
                guard !subscribers.isEmpty else { continue }
                for step in 0..<members.count {
                    let candidate = members[(turn + step) % members.count]
                    if candidate.topics.contains(tp.topic) {
                        plan[candidate.id, default: []].append(tp)
                        turn = (turn + step + 1) % members.count
                        break
                    }
                }
            }
        }
        return plan
    }
}
