/// Names of Ferry's RabbitMQ objects (DESIGN.md, "RabbitMQ topology").
public enum Topology {
    /// Durable quorum queue with one message per job to run.
    public static let jobsQueue = "ferry.jobs"
    /// Durable quorum queue of job events from Consumers to the Backend.
    public static let eventsQueue = "ferry.events"
    /// Exchange that receives jobs which failed delivery too often.
    public static let deadLetterExchange = "ferry.dead"
    /// Queue bound to `ferry.dead`, kept for operators to inspect.
    public static let deadLetterQueue = "ferry.dead-letters"
    /// A second queue bound to the `ferry.dead` fanout: the Backend consumes it and ends each
    /// dead-lettered job as `error`, while `ferry.dead-letters` keeps its copy for operators.
    public static let deadJobsQueue = "ferry.dead-jobs"
    /// Fanout exchange for cancel requests; each Consumer binds an exclusive queue.
    public static let controlExchange = "ferry.control"
}
