import { Controller, HttpCode, Post, Req, Res, UseInterceptors } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import type { AuthedRequest } from '../auth/authed-request';
import { JsonBodyInterceptor } from '../common/json-body.interceptor';
import { RefusedRequestsInterceptor } from '../metrics/refused-requests.interceptor';
import { RateLimitInterceptor } from '../rate-limit/rate-limit.interceptor';
import { CompletionsService } from './completions.service';

@ApiTags('chat')
@ApiBearerAuth('api-key')
// Order matters: refusals are counted around everything; the rate limit counts the request
// before its body is read.
@UseInterceptors(RefusedRequestsInterceptor, RateLimitInterceptor, JsonBodyInterceptor)
@Controller('v1/chat/completions')
export class CompletionsController {
  constructor(private readonly completions: CompletionsService) {}

  /** Writes its own response (JSON or SSE) straight to the socket. */
  @Post()
  @HttpCode(200)
  create(@Req() req: AuthedRequest, @Res() res: Response): Promise<void> {
    return this.completions.handle(req, res);
  }
}
