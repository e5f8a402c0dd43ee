import { Command } from 'commander';
import { notBuiltYet } from './not-built.js';

export function serveCommand(): Command {
  return new Command('serve').description('run the scheduler service: cron jobs, PX dump collection, retention, HTTP status').action(notBuiltYet('serve'));
}
