import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AdminAuth } from '../auth/admin-auth.decorator';
import { UsageService } from '../usage/usage.service';
import { UsageQueryDto } from './dto/usage.dto';

@ApiTags('admin')
@ApiBearerAuth('admin')
@AdminAuth()
@Controller('admin/usage')
export class AdminUsageController {
  constructor(private readonly usage: UsageService) {}

  @Get()
  summarize(@Query() query: UsageQueryDto) {
    return this.usage.summarize(query);
  }
}
