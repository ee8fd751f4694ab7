import { CallHandler, ExecutionContext, Inject, Injectable, NestInterceptor } from '@nestjs/common';
import { from, switchMap, type Observable } from 'rxjs';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { JsonRequest, readJsonBody } from './json-body';

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * Reads JSON bodies with the gateway's own limits and errors (Nest's body parser is off). An
 * interceptor rather than a middleware so that authentication (and the rate limit) come first:
 * an unauthenticated caller gets its 401 without the gateway reading its body.
 */
@Injectable()
export class JsonBodyInterceptor implements NestInterceptor {
  private readonly limit: number;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.limit = config.server.body_limit_bytes;
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = context.switchToHttp().getRequest<JsonRequest & { method: string }>();
    if (!BODY_METHODS.has(req.method) || req.body !== undefined) return next.handle();
    return from(readJsonBody(req, this.limit)).pipe(switchMap(() => next.handle()));
  }
}
