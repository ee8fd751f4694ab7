import type { IncomingMessage } from 'node:http';
import type { AuthenticatedKey } from '../keys/authenticated-key';

/** A request after authentication: the key it authenticated with rides along. */
export interface AuthedRequest extends IncomingMessage {
  id: string;
  apiKey: AuthenticatedKey;
  body?: unknown;
  rawBody?: Buffer;
}
