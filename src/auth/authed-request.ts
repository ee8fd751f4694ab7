import type { Request } from 'express';
import type { AuthenticatedKey } from '../keys/authenticated-key';

/** A request after ApiKeyGuard: the key it authenticated with rides along. */
export interface AuthedRequest extends Request {
  id: string;
  apiKey: AuthenticatedKey;
  rawBody?: Buffer;
}
