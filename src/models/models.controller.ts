import { Controller, Get, Inject, Param, Req, UseInterceptors } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { AuthedRequest } from '../auth/authed-request';
import { GatewayError } from '../common/gateway-error';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { mayUseModel } from '../keys/authenticated-key';
import { RateLimitInterceptor } from '../rate-limit/rate-limit.interceptor';

export interface ModelObject {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/** `GET /v1/models`: the configured models this key may use. */
@ApiTags('models')
@ApiBearerAuth('api-key')
@UseInterceptors(RateLimitInterceptor)
@Controller('v1/models')
export class ModelsController {
  private readonly models: ModelObject[];

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    // `created` is the process start: the config has no better date for a model.
    const created = Math.floor(Date.now() / 1000);
    this.models = config.models.map((m) => ({ id: m.id, object: 'model', created, owned_by: m.owned_by }));
  }

  @Get()
  list(@Req() req: AuthedRequest): { object: 'list'; data: ModelObject[] } {
    return { object: 'list', data: this.models.filter((m) => mayUseModel(req.apiKey, m.id)) };
  }

  @Get(':id')
  get(@Req() req: AuthedRequest, @Param('id') id: string): ModelObject {
    const model = this.models.find((m) => m.id === id);
    if (!model || !mayUseModel(req.apiKey, id)) throw GatewayError.modelNotFound(id);
    return model;
  }
}
