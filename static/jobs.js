// How the page keeps its view of a job: which states are still moving, how a websocket event
// merges into a snapshot, which of two views is the later, and a failure in words.

/** States a job can still leave by itself: the socket follows these. */
export const UNFINISHED = new Set(['queued', 'active', 'retrying']);

/**
 * The job after an event. Snapshots and events are one shape, the job view (README, "API"): an
 * event leaves out only the upload's fields, which never change, so every field it has is news.
 */
export function mergeEvent(job, event) {
  const { type: _type, ...changes } = event;
  return { ...job, ...changes };
}

/** True when `incoming` is older than `current`: every change bumps the job's version. */
export function isStale(current, incoming) {
  if (!current) return false;
  if (Number.isFinite(current.version) && Number.isFinite(incoming.version)) {
    return incoming.version < current.version;
  }
  if (!current.updated_at || !incoming.updated_at) return false;
  return Date.parse(incoming.updated_at) < Date.parse(current.updated_at);
}

export function errorText(job) {
  if (job.error && job.error.detail) return job.error.detail;
  if (job.error && job.error.code) return job.error.code;
  return 'processing failed';
}

/** The variant to show as the picture: the one named thumb, else the smallest. */
export function thumbnailOf(variants) {
  return variants.find((v) => v.name === 'thumb') ||
    [...variants].sort((a, b) => (a.bytes || 0) - (b.bytes || 0))[0];
}
