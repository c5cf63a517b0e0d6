# What `make install` lays out and what `make deb` packages. Two components, which become the
# two Debian packages: "choria" (the choria command, its server and broker services) and
# "choria-provisioner" (the daemon, its helpers, service, dashboard, rules and examples).
include(GNUInstallDirs)

set(CH_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "systemd unit directory, relative to the prefix")
set(CH_SYSUSERSDIR "lib/sysusers.d" CACHE STRING "sysusers.d directory, relative to the prefix")
set(CH_LIBEXECDIR "${CMAKE_INSTALL_LIBEXECDIR}/choria-provisioner")
set(CH_PROV_DATADIR "${CMAKE_INSTALL_DATADIR}/choria-provisioner")
set(CH_PROV_DOCDIR "${CMAKE_INSTALL_DATADIR}/doc/choria-provisioner")
set(CH_CHORIA_DOCDIR "${CMAKE_INSTALL_DATADIR}/doc/choria")
set(CH_COMPLETIONDIR "${CMAKE_INSTALL_DATADIR}/bash-completion/completions")

# Absolute paths written into the units (GNUInstallDirs maps prefix /usr to sysconfdir /etc).
set(CH_BINDIR "${CMAKE_INSTALL_FULL_BINDIR}")
set(CH_SYSCONFDIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}")
set(CH_DOCDIR "${CMAKE_INSTALL_PREFIX}/${CH_PROV_DOCDIR}")
foreach(unit choria-provisioner choria-server choria-broker)
  configure_file(${CMAKE_SOURCE_DIR}/contrib/systemd/${unit}.service.in
                 ${CMAKE_BINARY_DIR}/contrib/${unit}.service @ONLY)
endforeach()

set(SRC ${CMAKE_SOURCE_DIR}/contrib)

# ---- choria ----
install(TARGETS choria RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT choria)
install(FILES ${CMAKE_BINARY_DIR}/contrib/choria-server.service
              ${CMAKE_BINARY_DIR}/contrib/choria-broker.service
        DESTINATION ${CH_SYSTEMD_UNITDIR} COMPONENT choria)
install(FILES ${SRC}/packaging/choria.sysusers DESTINATION ${CH_SYSUSERSDIR} RENAME choria.conf
        COMPONENT choria)
install(FILES ${CMAKE_SOURCE_DIR}/docs/man/choria.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
        COMPONENT choria)
install(FILES ${SRC}/completion/choria.bash DESTINATION ${CH_COMPLETIONDIR} RENAME choria
        COMPONENT choria)
install(FILES ${SRC}/examples/server.conf ${SRC}/examples/broker.conf
        DESTINATION ${CH_CHORIA_DOCDIR}/examples COMPONENT choria)

# ---- choria-provisioner ----
install(TARGETS choria-provisioner RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT choria-provisioner)
install(TARGETS choria-demo-helper RUNTIME DESTINATION ${CH_LIBEXECDIR}
        COMPONENT choria-provisioner)
install(PROGRAMS ${SRC}/helpers/demo-helper ${SRC}/helpers/openssl-ca-helper
        DESTINATION ${CH_LIBEXECDIR} COMPONENT choria-provisioner)
install(FILES ${CMAKE_BINARY_DIR}/contrib/choria-provisioner.service
        DESTINATION ${CH_SYSTEMD_UNITDIR} COMPONENT choria-provisioner)
install(FILES ${CMAKE_SOURCE_DIR}/docs/man/choria-provisioner.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT choria-provisioner)
install(FILES ${SRC}/completion/choria-provisioner.bash DESTINATION ${CH_COMPLETIONDIR}
        RENAME choria-provisioner COMPONENT choria-provisioner)
install(FILES ${SRC}/grafana/choria-provisioner.json DESTINATION ${CH_PROV_DATADIR}
        RENAME grafana-dashboard.json COMPONENT choria-provisioner)
install(FILES ${SRC}/prometheus/choria-provisioner-rules.yaml DESTINATION ${CH_PROV_DATADIR}
        RENAME prometheus-rules.yaml COMPONENT choria-provisioner)
install(FILES ${SRC}/examples/choria-provisioner.yaml ${SRC}/examples/choria.cfg
              ${SRC}/examples/server.conf ${SRC}/examples/broker.conf
        DESTINATION ${CH_PROV_DOCDIR}/examples COMPONENT choria-provisioner)
install(PROGRAMS ${SRC}/helpers/demo-helper DESTINATION ${CH_PROV_DOCDIR}/examples
        RENAME helper COMPONENT choria-provisioner)
install(FILES ${SRC}/helpers/README.md DESTINATION ${CH_PROV_DOCDIR} RENAME helpers.md
        COMPONENT choria-provisioner)
install(FILES ${SRC}/packaging/choria-provisioner.default
        DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/default RENAME choria-provisioner
        COMPONENT choria-provisioner)
install(FILES ${SRC}/packaging/choria-provisioner.logrotate
        DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/logrotate.d RENAME choria-provisioner
        COMPONENT choria-provisioner)
