import { Injectable } from '@nestjs/common';

/** Why an in-flight request was cut short by the gateway itself. */
export const DRAINING = Symbol('draining');

/**
 * The process's drain state (DESIGN §3.3, §6.8): from the first shutdown signal, health turns
 * 503 and new completions are refused; in-flight ones are tracked so shutdown can wait for them
 * and, at the drain timeout, cut the rest short (their abort reason is DRAINING).
 */
@Injectable()
export class DrainState {
  private drainingSince: number | null = null;
  private readonly inFlight = new Set<AbortController>();
  private idleWaiters: Array<() => void> = [];

  get draining(): boolean {
    return this.drainingSince !== null;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  start(): void {
    this.drainingSince ??= Date.now();
  }

  /** Registers an in-flight request; call the returned function when it is over. */
  track(controller: AbortController): () => void {
    this.inFlight.add(controller);
    return () => {
      if (this.inFlight.delete(controller) && this.inFlight.size === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const wake of waiters) wake();
      }
    };
  }

  /** Resolves when nothing is in flight, or after `timeoutMs`; true when it went idle in time. */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.inFlight.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Cuts every in-flight request short, then waits (briefly) for them to record and end. */
  async abortAll(graceMs = 2000): Promise<void> {
    for (const controller of this.inFlight) controller.abort(DRAINING);
    await this.waitIdle(graceMs);
  }
}
