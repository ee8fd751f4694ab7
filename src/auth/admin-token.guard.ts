import { CanActivate, ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import { GatewayError } from '../common/gateway-error';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { KEY_PREFIX } from '../keys/key-format';
import { bearerToken } from './bearer';

/**
 * Checks `Authorization: Bearer <admin token>` in constant time: both sides are hashed first, so
 * neither the content nor the length of the token leaks through timing. A `db-` key is never an
 * admin credential.
 */
@Injectable()
export class AdminTokenGuard implements CanActivate {
  private readonly expected: Buffer;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    if (!config.admin_token) throw new Error('the admin token was not resolved before start-up');
    this.expected = digest(config.admin_token.reveal());
  }

  canActivate(context: ExecutionContext): boolean {
    const token = bearerToken(context.switchToHttp().getRequest().headers);
    if (!token || token.startsWith(KEY_PREFIX) || !timingSafeEqual(digest(token), this.expected)) {
      throw GatewayError.invalidAdminToken();
    }
    return true;
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
