/// An authorization request: who (principal) wants to do what (action) to which resource, in which context.
public struct Request: Sendable, Hashable {
    public var principal: EntityUID
    public var action: EntityUID
    public var resource: EntityUID
    /// The context record.
    public var context: [String: Value]

    public init(principal: EntityUID, action: EntityUID, resource: EntityUID, context: [String: Value] = [:]) {
        self.principal = principal
        self.action = action
        self.resource = resource
        self.context = context
    }
}
