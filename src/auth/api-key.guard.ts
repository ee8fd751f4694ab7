import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../common/gateway-error';
import { IS_PUBLIC } from '../common/public.decorator';
import type { AuthenticatedKey } from '../keys/authenticated-key';
import { KeyAuthenticator } from '../keys/key-authenticator';
import { IS_ADMIN } from './admin-auth.decorator';
import type { AuthedRequest } from './authed-request';
import { bearerToken } from './bearer';

/**
 * Global guard: every route needs a valid `db-` key unless it is marked `@Public()` or
 * `@AdminAuth()` (which has its own guard). A route someone forgot to mark fails closed.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly authenticator: KeyAuthenticator,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    if (this.reflector.getAllAndOverride<boolean>(IS_ADMIN, targets)) return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    req.apiKey = await authenticateBearer(this.authenticator, req.headers);
    return true;
  }
}

/** The key of `Authorization: Bearer db-…`; 401 when it is missing or not a live key. */
export function authenticateBearer(authenticator: KeyAuthenticator, headers: IncomingHttpHeaders): Promise<AuthenticatedKey> {
  const token = bearerToken(headers);
  if (!token) return Promise.reject(GatewayError.missingApiKey());
  return authenticator.authenticate(token);
}
