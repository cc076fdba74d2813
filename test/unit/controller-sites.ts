// Sites for the controller's config tests (controller-config, controller-ike-config).
import type { NewSite } from "../../host/controller/store/model.ts";

export interface SiteSpec {
  natted: boolean;
  trustedPort: boolean;
}

/** Site i: prefix 10.i.0.0/16, an Internet port 192.0.2.i (behind a NAT at 198.51.100.i when natted), maybe an MPLS port. */
export function siteOf(i: number, s: SiteSpec): NewSite {
  return {
    name: `site${i}`,
    prefixes: [`10.${i}.0.0/16`, `fd00:${i}::/48`],
    wan: [
      s.natted
        ? { name: "inet", privateAddress: `192.168.${i}.2`, publicAddress: `198.51.100.${i}`, publicPort: 40000 + i, natType: "port-restricted-cone" as const }
        : { name: "inet", privateAddress: `192.0.2.${i}` },
      ...(s.trustedPort ? [{ name: "mpls", privateAddress: `10.255.0.${i}`, trusted: true }] : []),
    ],
  };
}
