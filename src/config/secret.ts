import { inspect } from 'node:util';

/**
 * A credential from the config. It prints as `[redacted]` in logs, JSON and `util.inspect`, so a
 * logged config object or error can never carry it; code that needs it reads `.reveal()`.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return '[redacted]';
  }

  toString(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return '[redacted]';
  }
}
