import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, UseInterceptors } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AdminAuth } from '../auth/admin-auth.decorator';
import { JsonBodyInterceptor } from '../common/json-body.interceptor';
import { KeysService } from '../keys/keys.service';
import { CreateKeyDto, ListKeysQuery, UpdateKeyDto } from './dto/key.dto';

@ApiTags('admin')
@ApiBearerAuth('admin')
@AdminAuth()
@UseInterceptors(JsonBodyInterceptor)
@Controller('admin/keys')
export class AdminKeysController {
  constructor(private readonly keys: KeysService) {}

  @Post()
  create(@Body() body: CreateKeyDto) {
    return this.keys.create(body);
  }

  @Get()
  list(@Query() query: ListKeysQuery) {
    return this.keys.list(query.limit ?? 50, query.cursor, query.status);
  }

  @Get(':id')
  get(@Param('id') id: string) {
    return this.keys.get(id);
  }

  @Patch(':id')
  update(@Param('id') id: string, @Body() body: UpdateKeyDto) {
    return this.keys.update(id, body);
  }

  @Delete(':id')
  @HttpCode(200)
  revoke(@Param('id') id: string) {
    return this.keys.revoke(id);
  }
}
