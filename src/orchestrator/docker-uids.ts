import type Docker from "dockerode";
import type { Logger } from "../lib/logger";
import { firstFreeUid, uidInUse } from "./sandbox-uids";

/**
 * The docker driver's sandbox uids. Every container used to run as the image's uid 1000, so every
 * docker sandbox could open every other one's loopback listeners (code-server --auth none, the
 * agent) and the loopback guard could not tell them apart. Now each sandbox runs as a host uid of
 * its own from the local driver's range (SANDBOX_UID_BASE; without user-namespace remapping the
 * container's uid is the host's, which `meta skuid` sees).
 *
 * The daemon is the only memory: the uid is a label on the sandbox's named volume (immutable,
 * written at creation, so it lives as long as the volume) and on each of its containers. A volume
 * from before per-sandbox uids has no label and cannot get one: its uid lives on the labels of the
 * containers it is started with (a stopped container stays until the next start reads it).
 */

export const LABEL_MANAGED = "warren.managed";
export const LABEL_SANDBOX = "warren.sandbox-id";
/** The host uid the sandbox's processes run as (volume and container). */
export const LABEL_UID = "warren.uid";

/**
 * A constant script, the uid its only argument: files in the volume that are not the sandbox's
 * become its own (the image's /home copied into a new volume is 1000's; so is an old volume). The
 * volume's root stays root's, as before. -h and find's default of not following symlinks keep a
 * planted link from handing over anything outside the volume; -xdev stays on it.
 */
const CHOWN_SCRIPT = 'find /home -xdev -mindepth 1 \\( ! -user "$1" -o ! -group "$1" \\) -exec chown -h -- "$1:$1" {} +';

const CLAIM_ATTEMPTS = 5;

type HttpError = { statusCode?: number };
const statusOf = (err: unknown) => (err as HttpError)?.statusCode;

/** An Engine API call whose listed statuses (404: no such object) are an answer, not an error. */
export async function ignoring<T>(codes: number[], fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (codes.includes(statusOf(err) ?? -1)) return undefined;
    throw err;
  }
}

export function parseUid(label: string | undefined): number | null {
  if (!label || !/^\d{1,10}$/.test(label)) return null;
  const uid = Number(label);
  return uid > 0 && uid <= 0xffff_fffe ? uid : null;
}

export class DockerUids {
  /** Uids picked in this process whose label may not be visible on the daemon yet, by sandbox. */
  private readonly reserved = new Map<string, number>();

  constructor(
    private readonly docker: Docker,
    private readonly base: number,
    private readonly logger: Logger,
  ) {}

  /**
   * The sandbox's uid, creating its volume (labelled with a new uid) when it has none yet.
   * `previous` is the uid on the sandbox's previous container (null without one). Call settle(id)
   * once the sandbox's container (which carries the uid) exists.
   */
  async claim(sandboxId: string, volume: string, labels: Record<string, string>, previous: number | null): Promise<{ uid: number; created: boolean }> {
    const existing = await this.volumeLabels(volume);
    if (existing) {
      const labelled = parseUid(existing[LABEL_UID]);
      if (labelled !== null) return { uid: labelled, created: false };
      // A volume from before per-sandbox uids: its previous container's, or a new one for its containers.
      return { uid: previous ?? (await this.pick(sandboxId)), created: false };
    }
    for (let attempt = 1; ; attempt++) {
      const uid = await this.pick(sandboxId);
      await this.docker.createVolume({ Name: volume, Labels: { ...labels, [LABEL_UID]: String(uid) } });
      // Creating an existing volume returns it: another Warren may have created this sandbox's first.
      const actual = parseUid((await this.volumeLabels(volume))?.[LABEL_UID]);
      if (actual !== uid) {
        if (actual === null) throw new Error(`volume ${volume} exists without a ${LABEL_UID} label`);
        this.reserved.set(sandboxId, actual);
        return { uid: actual, created: false };
      }
      // Another Warren on this daemon may have picked the same uid for another sandbox at the same
      // moment. Each one checks after its own label is visible, so at least the later sees the
      // other and gives way (both may: they retry after a random pause); never do both keep it.
      const holders = (await this.holders(uid)).filter((id) => id !== sandboxId);
      if (holders.length === 0) return { uid, created: true };
      await this.docker.getVolume(volume).remove().catch(() => undefined);
      this.reserved.delete(sandboxId);
      if (attempt >= CLAIM_ATTEMPTS) throw new Error(`sandbox ${sandboxId}: uid ${uid} is also claimed by ${holders.join(", ")}; gave up after ${attempt} attempts`);
      this.logger.warn({ sandboxId, uid, holders }, "docker sandbox uid taken at the same moment; picking another");
      await Bun.sleep(50 + Math.floor(Math.random() * 250));
    }
  }

  /** The sandbox's uid is on its container's labels now (or the start failed): no reservation needed. */
  settle(sandboxId: string): void {
    this.reserved.delete(sandboxId);
  }

  /**
   * Makes every file in the volume the uid's, in a short-lived root container of the sandbox's
   * image with no network and only the capabilities chown needs (CHOWN; DAC_READ_SEARCH to walk
   * the 0700 home). Run while none of the sandbox's containers runs. Its first mount of a new
   * volume is also what copies the image's /home into it.
   */
  async chownVolume(sandboxId: string, image: string, volume: string, uid: number): Promise<void> {
    const name = `warren-${sandboxId}-chown`;
    await ignoring([404], () => this.docker.getContainer(name).remove({ force: true }));
    const container = await this.docker.createContainer({
      name,
      Image: image,
      // No sandbox label: listManaged never mistakes it for a workload.
      Labels: { [LABEL_MANAGED]: "true" },
      User: "0:0",
      Entrypoint: ["/bin/sh"],
      Cmd: ["-c", CHOWN_SCRIPT, "sh", String(uid)],
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: "none",
        Mounts: [{ Type: "volume", Source: volume, Target: "/home" }],
        ReadonlyRootfs: true,
        CapDrop: ["ALL"],
        CapAdd: ["CHOWN", "DAC_READ_SEARCH"],
        SecurityOpt: ["no-new-privileges"],
        Memory: 256 * 1024 * 1024,
        PidsLimit: 64,
      },
    });
    try {
      await container.start();
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      if (StatusCode !== 0) throw new Error(`giving volume ${volume} to uid ${uid} failed: find/chown in ${image} exited with ${StatusCode}`);
    } finally {
      await ignoring([404], () => container.remove({ force: true }));
    }
  }

  /** The lowest uid from the base on no labelled volume or container, not reserved here, unused on the host. */
  private async pick(sandboxId: string): Promise<number> {
    const taken = await this.labelledUids();
    // No await from here to the reservation: two starts in this process never pick the same uid.
    const reserved = new Set([...this.reserved].filter(([id]) => id !== sandboxId).map(([, uid]) => uid));
    const uid = firstFreeUid(this.base, (u) => !taken.has(u) && !reserved.has(u) && !uidInUse(u));
    this.reserved.set(sandboxId, uid);
    return uid;
  }

  private async labelledUids(): Promise<Set<number>> {
    const filters = { label: [`${LABEL_MANAGED}=true`] };
    const [containers, volumes] = await Promise.all([this.docker.listContainers({ all: true, filters }), this.docker.listVolumes({ filters })]);
    const labels = [...containers.map((c) => c.Labels), ...(volumes.Volumes ?? []).map((v) => v.Labels ?? {})];
    return new Set(labels.map((l) => parseUid(l[LABEL_UID])).filter((u): u is number => u !== null));
  }

  /** Sandboxes whose volume or container carries this uid. */
  private async holders(uid: number): Promise<string[]> {
    const filters = { label: [`${LABEL_UID}=${uid}`] };
    const [containers, volumes] = await Promise.all([this.docker.listContainers({ all: true, filters }), this.docker.listVolumes({ filters })]);
    const labels = [...containers.map((c) => c.Labels), ...(volumes.Volumes ?? []).map((v) => v.Labels ?? {})];
    return [...new Set(labels.map((l) => l[LABEL_SANDBOX]).filter((id): id is string => !!id))];
  }

  private async volumeLabels(volume: string): Promise<Record<string, string> | null> {
    const v = await ignoring([404], () => this.docker.getVolume(volume).inspect());
    return v ? (v.Labels ?? {}) : null;
  }
}
