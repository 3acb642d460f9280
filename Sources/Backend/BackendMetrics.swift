import FerryContracts
import Foundation
import Metrics

/// The Backend's metrics (README → Monitoring). Gauges are set when Prometheus scrapes; the
/// histograms and counters as things happen.
enum BackendMetrics {
    /// `ferry_jobs{status}`, `ferry_queue_depth` and `ferry_queue_consumers`, read now.
    static func collect(store: JobStore, control: any BrokerControl) async {
        if let counts = try? await store.statusCounts() {
            for status in JobStatus.allCases {
                Gauge(label: "ferry_jobs", dimensions: [("status", status.rawValue)]).record(counts[status.rawValue] ?? 0)
            }
        }
        if let waiting = try? await control.jobsWaiting() {
            Gauge(label: "ferry_queue_depth").record(waiting.messages)
            Gauge(label: "ferry_queue_consumers").record(waiting.consumers)
        }
    }

    /// After an event moved a job: its wait (submitted → running) or run time (running → end).
    static func jobMoved(to status: JobStatus, times: JobStore.Times) {
        if status == .running, let started = times.started {
            Metrics.Timer(label: "ferry_job_wait_seconds").recordInterval(since: times.submitted, until: started)
        }
        if status.isFinal {
            Counter(label: "ferry_jobs_finished_total", dimensions: [("status", status.rawValue)]).increment()
            if let started = times.started, let finished = times.finished {
                Metrics.Timer(label: "ferry_job_run_seconds").recordInterval(since: started, until: finished)
            }
        }
    }

    static func uploaded(bytes: Int, accepted: Bool) {
        Counter(label: "ferry_uploads_total", dimensions: [("result", accepted ? "accepted" : "refused")]).increment()
        if accepted { Counter(label: "ferry_upload_bytes_total").increment(by: bytes) }
    }
}

extension Metrics.Timer {
    func recordInterval(since start: Date, until end: Date) {
        recordNanoseconds(Int64(max(0, end.timeIntervalSince(start)) * 1_000_000_000))
    }
}
