-- The gui add-on's X server listened on an abstract unix socket too (@/tmp/.X11-unix/X<display>).
-- Abstract sockets belong to the network namespace, which local sandboxes share with the host, so
-- any other sandbox could open that display (read the screen, inject input) despite its private
-- /tmp and the loopback guard (nftables does not see unix sockets). `-nolisten local` leaves only
-- the filesystem socket in the sandbox's own /tmp, which x11vnc uses. Applied to the seeded command
-- and to an operator's edited one that still starts Xvfb the seeded way.
UPDATE "container_addons" SET
  "service" = jsonb_set(
    "service",
    '{command}',
    to_jsonb(replace("service"->>'command', ' -nolisten tcp &', ' -nolisten tcp -nolisten local &'))
  )
WHERE "id" = 'gui'
  AND "service"->>'command' LIKE '%Xvfb :$d -screen 0 1280x800x24 -nolisten tcp &%';
