import * as grpc from "@grpc/grpc-js";
import { protoPath } from "grpc-health-check";
import * as protoLoader from "@grpc/proto-loader";

type HealthCtor = new (a: string, c: grpc.ChannelCredentials) => grpc.Client & {
  check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
};

export class HealthClient {
  readonly #client: InstanceType<HealthCtor>;
  constructor(address: string) {
    const def = protoLoader.loadSync(protoPath, { keepCase: true, enums: String });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: HealthCtor } } } };
    this.#client = new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  }
  check(service: string): Promise<string> {
    return new Promise((resolve, reject) =>
      this.#client.check({ service }, (err, res) => {
        this.#client.close();
        if (err) reject(err);
        else resolve(res?.status ?? "UNKNOWN");
      }),
    );
  }
}
