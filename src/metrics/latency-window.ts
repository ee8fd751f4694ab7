/**
 * The last N request durations, for exact percentiles in the JSON snapshot (a Prometheus
 * histogram only gives bucket-bounded estimates). Fixed memory, O(1) per request.
 */
export class LatencyWindow {
  private readonly values: Float64Array;
  private next = 0;
  private count = 0;

  constructor(size: number) {
    this.values = new Float64Array(size);
  }

  add(seconds: number): void {
    this.values[this.next] = seconds;
    this.next = (this.next + 1) % this.values.length;
    if (this.count < this.values.length) this.count++;
  }

  get size(): number {
    return this.count;
  }

  /** Nearest-rank percentiles in seconds; null when nothing was recorded. */
  percentiles(ps: number[]): Array<number | null> {
    if (this.count === 0) return ps.map(() => null);
    const sorted = Array.from(this.values.subarray(0, this.count)).sort((a, b) => a - b);
    return ps.map((p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]);
  }
}
