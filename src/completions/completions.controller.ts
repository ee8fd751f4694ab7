import { Controller, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Public } from '../common/public.decorator';
import { CompletionsRoute } from './completions.route';

@ApiTags('chat')
@ApiBearerAuth('api-key')
@Controller('v1/chat/completions')
export class CompletionsController {
  constructor(private readonly route: CompletionsRoute) {}

  /**
   * Usually never reached: CompletionsFastLane serves the endpoint ahead of Nest. `@Public()`
   * because the route authenticates (and rate-limits) the request itself, as it does there.
   */
  @Post()
  @Public()
  @HttpCode(200)
  create(@Req() req: IncomingMessage, @Res() res: ServerResponse): Promise<void> {
    return this.route.handle(req, res);
  }
}
