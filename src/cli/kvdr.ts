#!/usr/bin/env node
import { kvdrProgram } from './program.js';
import { runCli } from './run-cli.js';

process.exitCode = await runCli(kvdrProgram());
