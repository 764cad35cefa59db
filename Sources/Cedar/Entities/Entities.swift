/// One entity: its id, attributes, parents and tags.
public struct Entity: Sendable, Hashable {
    public let uid: EntityUID
    public var attributes: [String: Value]
    /// Direct parents, as given.
    public var parents: Set<EntityUID>
    public var tags: [String: Value]

    public init(
        uid: EntityUID, attributes: [String: Value] = [:], parents: Set<EntityUID> = [], tags: [String: Value] = [:]
    ) {
        self.uid = uid
        self.attributes = attributes
        self.parents = parents
        self.tags = tags
    }
}

/// An immutable set of entities with the transitive closure of the parent relation precomputed,
/// so that `in` is one hash lookup.
public struct Entities: Sendable {
    /// A stored entity and all its ancestors (transitively).
    struct Stored: Sendable {
        let entity: Entity
        let ancestors: Set<EntityUID>
    }

    private let storage: [EntityUID: Stored]

    /// An empty entity set.
    public init() { storage = [:] }

    /// Builds an entity set. An id given twice with different contents is an error, and so is a cycle in the
    /// parent relation (as in the reference implementation).
    public init(_ entities: [Entity]) throws(CedarError) {
        var byUID: [EntityUID: Entity] = [:]
        byUID.reserveCapacity(entities.count)
        for e in entities {
            if let previous = byUID.updateValue(e, forKey: e.uid), previous != e {
                throw CedarError(.entities, "entity \(e.uid) is given twice with different contents")
            }
        }
        var result: [EntityUID: Stored] = [:]
        result.reserveCapacity(byUID.count)
        var memo: [EntityUID: Set<EntityUID>] = [:]
        for (uid, e) in byUID {
            let ancestors = Self.closure(of: uid, in: byUID, memo: &memo)
            guard !ancestors.contains(uid) else {
                throw CedarError(.entities, "the entity hierarchy has a cycle through \(uid)")
            }
            result[uid] = Stored(entity: e, ancestors: ancestors)
        }
        storage = result
    }

    /// All ancestors of `uid`: an iterative search over parents (cycles terminate), memoised for acyclic parts.
    private static func closure(
        of uid: EntityUID, in byUID: [EntityUID: Entity], memo: inout [EntityUID: Set<EntityUID>]
    ) -> Set<EntityUID> {
        if let known = memo[uid] { return known }
        var seen = Set<EntityUID>()
        var stack = Array(byUID[uid]?.parents ?? [])
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            if let known = memo[next] {
                seen.formUnion(known)
                continue
            }
            if let parents = byUID[next]?.parents { stack.append(contentsOf: parents) }
        }
        // Only memoise entities outside cycles: inside a cycle the entity is its own ancestor, which is fine to store.
        memo[uid] = seen
        return seen
    }

    /// The entity with this id, if present.
    public subscript(uid: EntityUID) -> Entity? { storage[uid]?.entity }

    /// All ancestors of `uid` (empty for unknown entities).
    public func ancestors(of uid: EntityUID) -> Set<EntityUID> { storage[uid]?.ancestors ?? [] }

    /// Whether `descendant in ancestor` holds (equality or the transitive parent relation).
    public func isDescendant(_ descendant: EntityUID, of ancestor: EntityUID) -> Bool {
        descendant == ancestor || (storage[descendant]?.ancestors.contains(ancestor) ?? false)
    }

    /// The number of entities.
    public var count: Int { storage.count }

    /// All entities, in no particular order.
    public var all: [Entity] { storage.values.map(\.entity) }

    func stored(_ uid: EntityUID) -> Stored? { storage[uid] }
}
