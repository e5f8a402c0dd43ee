#!/usr/bin/env node
import { dropIpServernameWarning } from '../util/known-warnings.js';
import { keepYoungGenerationSmall } from '../util/young-generation.js';
import { commandWord, STREAMING_COMMANDS } from './command-word.js';

dropIpServernameWarning();

// Before anything else is loaded: start-up would otherwise grow the young generation (see young-generation.ts).
if (STREAMING_COMMANDS.includes(commandWord(process.argv.slice(2)) ?? '')) keepYoungGenerationSmall();
const [{ kvdrProgram }, { runCli }] = await Promise.all([import('./program.js'), import('./run-cli.js')]);
process.exitCode = await runCli(kvdrProgram());
