/** The machine a run was measured on: printed first and kept in results.json. */
import { cpus, loadavg, platform, release, totalmem } from 'node:os';

interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  node: string;
  platform: string;
  /** 1-minute load average when the run started: a busy shared machine shows here. */
  loadAverage1m: number;
}

/** @example console.log(describeMachine(machineInfo())); */
const machineInfo = (): MachineInfo => {
  const cpuList = cpus();
  return {
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    memoryBytes: totalmem(),
    node: process.version,
    platform: `${platform()} ${release()}`,
    loadAverage1m: loadavg()[0] ?? 0,
  };
};

const describeMachine = (info: MachineInfo): string =>
  `machine: ${info.cpuModel}, ${info.cores} cores, ${(info.memoryBytes / 2 ** 30).toFixed(1)} GiB, ` +
  `node ${info.node}, ${info.platform}, load ${info.loadAverage1m.toFixed(2)}`;

export type { MachineInfo };
export { describeMachine, machineInfo };
